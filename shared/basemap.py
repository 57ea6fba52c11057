"""The pages' base map: the raster tiles drawn under the city's polygons, from the settings
``map_tiles`` / ``map_crs`` / ``map_attribution`` (``[map]`` in a city folder's ``city.toml``, or
``GRIDCASE_MAP_*``; ``shared.config.map_settings`` checks them).

``map_tiles`` is either

- an **XYZ URL template** as Leaflet reads it: ``https://tile.example.org/{z}/{x}/{y}.png``, ``{s}`` for a
  subdomain (one of ``map_subdomains``), ``{-y}`` for TMS row order; or
- a **WMTS capabilities URL** (OGC 07-057r7, e.g. 天地图 ``https://t0.tianditu.gov.cn/vec_w/wmts?
  SERVICE=WMTS&REQUEST=GetCapabilities&tk=KEY``). It is read once per process, when a page first asks
  (``current``), with OWSLib: the layer ``map_layer`` (or the first that has one) and a tile matrix set in
  Web Mercator (EPSG:3857 and its aliases) of 256-pixel tiles whose matrices are the well-known zoom
  levels (the scale denominator at zoom 0 is 559082264.0287178, halved at every level, OGC 07-057r7
  Annex E.4 "GoogleMapsCompatible"; a set may start at any zoom and name its matrices as it likes). The
  tile URL is the layer's RESTful ``ResourceURL`` template, else the KVP ``GetTile`` request; query
  parameters of the capabilities URL that are not WMTS's own (天地图's ``tk``) are kept on it.
  A capabilities document that cannot be read leaves the map without tiles (logged, tried again after a
  minute).

``map_crs`` = ``gcj02`` says the tiles are drawn in GCJ-02 (AutoNavi/Gaode, Tencent): the pages then
draw every WGS84 position shifted into GCJ-02 (``shared/pages/static/gcj02.js``, the same published
conversion as ``shared/gcj02.py``), so a pin lands on its street.

What a page receives (``GET /<page>/map.json``, ``BaseMap.json``)::

    {"tiles": "https://…/{z}/{x}/{y}.png" | null, "crs": "wgs84" | "gcj02", "attribution": "…",
     "subdomains": "abc", "min_zoom": 0, "max_zoom": 18, "matrices": null | ["EPSG:3857:0", …]}

``matrices`` (WMTS only) are the matrix identifiers of the zooms ``min_zoom``…``max_zoom``; the
template names the current one ``{m}``. ``BaseMap.origins`` are the origins the pages' Content-Security-
Policy lets images come from (``img-src``): the template's host, once per subdomain.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

log = logging.getLogger("gridcase.basemap")

#: Names a WMTS tile matrix set's SupportedCRS gives Web Mercator (urn:ogc:def:crs:EPSG::3857 ends in one).
WEB_MERCATOR = ("3857", "900913", "102100", "102113", "3785")
#: The scale denominator of zoom 0 in Web Mercator for 256-pixel tiles at 0.28 mm a pixel (OGC 07-057r7 E.4).
ZOOM0_SCALE = 559082264.0287178
#: Web Mercator's top-left corner in metres.
HALF_WORLD = 20037508.342789244
#: Parameters of WMTS itself: not carried from the capabilities URL onto the tile URL.
WMTS_PARAMETERS = {"service", "request", "version", "acceptversions", "sections", "updatesequence",
                   "acceptformats", "acceptlanguages"}
RETRY_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class BaseMap:
    tiles: str | None = None
    crs: str = "wgs84"
    attribution: str = ""
    subdomains: str = "abc"
    min_zoom: int = 0
    max_zoom: int = 18
    matrices: tuple[str, ...] | None = None

    def json(self) -> dict:
        """What a page draws (the module's docstring shows the shape)."""
        return {"tiles": self.tiles, "crs": self.crs, "attribution": self.attribution, "subdomains": self.subdomains,
                "min_zoom": self.min_zoom, "max_zoom": self.max_zoom,
                "matrices": list(self.matrices) if self.matrices is not None else None}

    @property
    def origins(self) -> tuple[str, ...]:
        """``scheme://host[:port]`` of every host the tiles come from (``{s}`` expanded); none without tiles."""
        if not self.tiles:
            return ()
        parts = urlsplit(self.tiles)
        hosts = [parts.netloc.replace("{s}", s) for s in self.subdomains] if "{s}" in parts.netloc else [parts.netloc]
        return tuple(dict.fromkeys(f"{parts.scheme}://{host}" for host in hosts))


def is_xyz(tiles: str) -> bool:
    return "{z}" in tiles


_lock = threading.Lock()
_cache: dict[tuple, tuple[BaseMap, float]] = {}  # settings → (map, when to try again; inf: for good)


def current(settings) -> BaseMap:
    """The base map of ``settings`` (a ``shared.config.Settings``); a WMTS capabilities document is read
    the first time and kept (a failure: a map without tiles for ``RETRY_SECONDS``, then tried again)."""
    key = (settings.map_tiles, settings.map_crs, settings.map_attribution, settings.map_subdomains,
           settings.map_layer)
    with _lock:
        found = _cache.get(key)
        if found is not None and time.monotonic() < found[1]:
            return found[0]
        made, good = _make(settings)
        _cache[key] = (made, math.inf if good else time.monotonic() + RETRY_SECONDS)
        return made


def _make(settings) -> tuple[BaseMap, bool]:
    plain = BaseMap(crs=settings.map_crs, attribution=settings.map_attribution, subdomains=settings.map_subdomains)
    tiles = settings.map_tiles
    if not tiles:
        return plain, True
    if is_xyz(tiles):
        return BaseMap(tiles, settings.map_crs, settings.map_attribution, settings.map_subdomains), True
    try:
        answer = requests.get(tiles, timeout=TIMEOUT_SECONDS, headers={"Accept": "application/xml, text/xml"})
        answer.raise_for_status()
        found = from_capabilities(answer.content, tiles, settings.map_layer)
    except (requests.RequestException, ValueError) as exc:
        log.warning("the base map's WMTS capabilities could not be used: %s (GRIDCASE_MAP_TILES %s); "
                    "the pages show no base map and try again in %.0f s", exc, _redacted(tiles), RETRY_SECONDS)
        return plain, False
    log.info("base map: WMTS layer %s, zooms %d-%d, %s", found["layer"], found["min_zoom"], found["max_zoom"],
             _redacted(found["tiles"]))
    return BaseMap(found["tiles"], settings.map_crs, settings.map_attribution, settings.map_subdomains,
                   found["min_zoom"], found["max_zoom"], tuple(found["matrices"])), True


def _redacted(url: str) -> str:
    """A URL without its query (which may carry a key) for the log."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))


def from_capabilities(xml: bytes, url: str, layer: str | None = None) -> dict:
    """An XYZ-like template from a WMTS capabilities document: ``{"layer", "tiles", "min_zoom",
    "max_zoom", "matrices"}`` (``tiles`` names the matrix ``{m}``, the row ``{y}``, the column ``{x}``).
    Raises ``ValueError`` saying what is missing: the layer, or a Web Mercator set of 256-pixel tiles at
    the well-known zoom levels."""
    from owslib.wmts import WebMapTileService  # its import sets lxml's parser not to resolve entities

    try:
        service = WebMapTileService(url, xml=xml)
    except Exception as exc:  # noqa: BLE001 — lxml and OWSLib raise many kinds for a bad document
        raise ValueError(f"not a WMTS capabilities document ({type(exc).__name__}: {exc})") from None
    names = [layer] if layer else list(service.contents)
    if layer and layer not in service.contents:
        raise ValueError(f"no layer {layer!r} (there are: {', '.join(service.contents) or 'none'})")
    for name in names:
        content = service.contents[name]
        for set_id in content.tilematrixsetlinks:
            matrix_set = service.tilematrixsets.get(set_id)
            if matrix_set is None or not str(matrix_set.crs).replace("::", ":").endswith(
                    tuple(":" + code for code in WEB_MERCATOR)):
                continue
            zooms = _zooms(matrix_set)
            if not zooms:
                continue
            low = min(zooms)
            high = low
            while high + 1 in zooms:
                high += 1
            return {"layer": name, "tiles": _tile_url(service, content, set_id, url), "min_zoom": low,
                    "max_zoom": high, "matrices": [zooms[z] for z in range(low, high + 1)]}
    raise ValueError(f"no layer{' ' + repr(layer) if layer else ''} with a Web Mercator (EPSG:3857) tile matrix "
                     "set of 256-pixel tiles at the well-known zoom levels (GoogleMapsCompatible)")


def _zooms(matrix_set) -> dict[int, str]:
    """Zoom → matrix identifier of the matrices that are a Web Mercator zoom level."""
    found = {}
    for identifier, matrix in matrix_set.tilematrix.items():
        level = math.log2(ZOOM0_SCALE / matrix.scaledenominator)
        z = round(level)
        x, y = matrix.topleftcorner
        if (abs(level - z) < 1e-3 and matrix.tilewidth == 256 and matrix.tileheight == 256
                and abs(abs(x) - HALF_WORLD) < 1 and abs(abs(y) - HALF_WORLD) < 1 and 0 <= z <= 24):
            found[z] = identifier
    return found


def _tile_url(service, content, set_id: str, url: str) -> str:
    styles = content.styles or {}
    style = next((s for s, v in styles.items() if v.get("isDefault")), next(iter(styles), "default"))
    kept = [(k, v) for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)
            if k.lower() not in WMTS_PARAMETERS]
    rest = [r for r in content.resourceURLs if r.get("resourceType") == "tile"]
    if rest:
        resource = next((r for r in rest if r.get("format") in ("image/png", "image/jpeg")), rest[0])
        template = resource["template"]
        for name, value in (("{TileMatrixSet}", set_id), ("{TileMatrix}", "{m}"), ("{TileRow}", "{y}"),
                            ("{TileCol}", "{x}"), ("{Style}", style), ("{style}", style)):
            template = template.replace(name, value)
        return _with_query(template, kept)
    get_urls = [m.get("url") for m in service.getOperationByName("GetTile").methods if m.get("type") == "Get"]
    if not get_urls:
        raise ValueError("the capabilities name neither a ResourceURL nor a GetTile URL")
    formats = list(content.formats or ["image/png"])
    fmt = next((f for f in formats if f in ("image/png", "image/jpeg")), formats[0])
    query = [("SERVICE", "WMTS"), ("REQUEST", "GetTile"), ("VERSION", "1.0.0"), ("LAYER", content.id),
             ("STYLE", style), ("TILEMATRIXSET", set_id), ("FORMAT", fmt)]
    base = get_urls[0].rstrip("?&")
    own = [(k, v) for k, v in parse_qsl(urlsplit(base).query, keep_blank_values=True)]
    names = {k.lower() for k, _ in own + query}
    parts = urlsplit(base)
    fixed = urlencode(own + query + [(k, v) for k, v in kept if k.lower() not in names])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, fixed + "&TILEMATRIX={m}&TILEROW={y}&TILECOL={x}", ""))


def _with_query(template: str, extra: list[tuple[str, str]]) -> str:
    if not extra:
        return template
    present = {k.lower() for k, _ in parse_qsl(urlsplit(template).query, keep_blank_values=True)}
    extra = [(k, v) for k, v in extra if k.lower() not in present]
    return template + ("&" if "?" in template else "?") + urlencode(extra) if extra else template
