"""The base map's settings: ``[map]`` in a city folder's ``city.toml`` under ``GRIDCASE_MAP_*``, checked
when the settings are read; a WMTS capabilities document turned into a tile template; and the pages'
Content-Security-Policy naming the tile host and nothing else."""
from __future__ import annotations

import math

import pytest

from shared import basemap
from shared.config import from_env
from shared.pages import PAGE_CSP, page_csp

OSM = "https://{s}.tile.example.org/{z}/{x}/{y}.png"


def city(tmp_path, text: str):
    folder = tmp_path / "city"
    folder.mkdir(exist_ok=True)
    (folder / "city.toml").write_text(text, encoding="utf-8")
    return folder


def settings(tmp_path, folder=None, **env):
    return from_env(tmp_path / "data", env={"GRIDCASE_CITY": str(folder) if folder else "demo", **env})


def test_the_city_folder_names_the_tiles_and_the_environment_wins(tmp_path):
    folder = city(tmp_path, '[map]\ntiles = "https://tiles.city.example/{z}/{x}/{y}.png"\ncrs = "gcj02"\n'
                            'attribution = "© 城市测绘院"\n')
    found = settings(tmp_path, folder)
    assert (found.map_tiles, found.map_crs, found.map_attribution) == (
        "https://tiles.city.example/{z}/{x}/{y}.png", "gcj02", "© 城市测绘院")
    found = settings(tmp_path, folder, GRIDCASE_MAP_TILES=OSM, GRIDCASE_MAP_CRS="WGS84",
                     GRIDCASE_MAP_ATTRIBUTION="© OpenStreetMap contributors")
    assert (found.map_tiles, found.map_crs, found.map_attribution) == (OSM, "wgs84", "© OpenStreetMap contributors")
    plain = settings(tmp_path)
    assert plain.map_tiles is None and plain.map_crs == "wgs84"


@pytest.mark.parametrize(("env", "named"), [
    ({"GRIDCASE_MAP_TILES": "ftp://tiles.example/{z}/{x}/{y}.png"}, "GRIDCASE_MAP_TILES"),
    ({"GRIDCASE_MAP_TILES": "tiles.example/{z}/{x}/{y}.png"}, "GRIDCASE_MAP_TILES"),
    ({"GRIDCASE_MAP_TILES": "https://tiles.example/{z}/{x}.png"}, "GRIDCASE_MAP_TILES"),
    ({"GRIDCASE_MAP_TILES": "https://{z}.tiles.example/{z}/{x}/{y}.png"}, "GRIDCASE_MAP_TILES"),
    ({"GRIDCASE_MAP_CRS": "bd09"}, "GRIDCASE_MAP_CRS"),
    ({"GRIDCASE_MAP_SUBDOMAINS": "a,b"}, "GRIDCASE_MAP_SUBDOMAINS"),
])
def test_a_setting_that_cannot_be_used_is_refused_naming_its_variable(tmp_path, env, named):
    with pytest.raises(ValueError, match=named):
        settings(tmp_path, **env)


@pytest.mark.parametrize(("text", "named"), [
    ('[map]\ntile = "https://x/{z}/{x}/{y}.png"\n', "unknown key 'tile'"),
    ('[map]\ntiles = 3\n', r"\[map\] tiles"),
    ('[map]\ncrs = "mercator"\n', r"\[map\] crs"),
    ('map = "https://x/{z}/{x}/{y}.png"\n', r"\[map\] is a table"),
])
def test_a_bad_map_table_is_refused_naming_the_file_and_key(tmp_path, text, named):
    with pytest.raises(ValueError, match=named):
        settings(tmp_path, city(tmp_path, text))


def test_the_page_policy_lets_images_come_from_the_tile_hosts_only(tmp_path):
    found = basemap.current(settings(tmp_path, GRIDCASE_MAP_TILES=OSM, GRIDCASE_MAP_SUBDOMAINS="ab"))
    assert found.origins == ("https://a.tile.example.org", "https://b.tile.example.org")
    policy = page_csp(found.origins)
    assert "img-src 'self' data: blob: https://a.tile.example.org https://b.tile.example.org;" in policy
    assert policy.replace(" https://a.tile.example.org https://b.tile.example.org", "") == PAGE_CSP
    assert page_csp(basemap.current(settings(tmp_path)).origins) == PAGE_CSP
    port = basemap.BaseMap("http://127.0.0.1:8123/t/{z}/{x}/{y}.png")
    assert port.origins == ("http://127.0.0.1:8123",)


# -- WMTS ------------------------------------------------------------------------------------------------------

def capabilities(*, rest: bool, crs: str = "urn:ogc:def:crs:EPSG::3857", first: int = 1, last: int = 18,
                 tile: int = 256) -> bytes:
    """A WMTS 1.0.0 capabilities document like 天地图's (KVP GetTile, matrices named 1…18) or, with ``rest``,
    a RESTful one (a ResourceURL template, matrices named EPSG:3857:z)."""
    matrices = "".join(
        f"<TileMatrix><ows:Identifier>{f'EPSG:3857:{z}' if rest else z}</ows:Identifier>"
        f"<ScaleDenominator>{basemap.ZOOM0_SCALE / 2 ** z!r}</ScaleDenominator>"
        f"<TopLeftCorner>-20037508.3427892 20037508.3427892</TopLeftCorner>"
        f"<TileWidth>{tile}</TileWidth><TileHeight>{tile}</TileHeight>"
        f"<MatrixWidth>{2 ** z}</MatrixWidth><MatrixHeight>{2 ** z}</MatrixHeight></TileMatrix>"
        for z in range(first, last + 1))
    resource = ('<ResourceURL format="image/png" resourceType="tile" template="https://wmts.city.example/rest/'
                'vec/{Style}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.png"/>') if rest else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1"
    xmlns:xlink="http://www.w3.org/1999/xlink" version="1.0.0">
  <ows:ServiceIdentification><ows:Title>vec</ows:Title><ows:ServiceType>OGC WMTS</ows:ServiceType>
    <ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion></ows:ServiceIdentification>
  <ows:OperationsMetadata>
    <ows:Operation name="GetCapabilities"><ows:DCP><ows:HTTP>
      <ows:Get xlink:href="http://t0.tianditu.gov.cn/vec_w/wmts?"/></ows:HTTP></ows:DCP></ows:Operation>
    <ows:Operation name="GetTile"><ows:DCP><ows:HTTP>
      <ows:Get xlink:href="http://t0.tianditu.gov.cn/vec_w/wmts?"/></ows:HTTP></ows:DCP></ows:Operation>
  </ows:OperationsMetadata>
  <Contents>
    <Layer><ows:Title>other</ows:Title><ows:Identifier>lonlat</ows:Identifier>
      <Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style><Format>tiles</Format>
      <TileMatrixSetLink><TileMatrixSet>c</TileMatrixSet></TileMatrixSetLink></Layer>
    <Layer><ows:Title>vec</ows:Title><ows:Identifier>vec</ows:Identifier>
      <Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style><Format>tiles</Format>
      <TileMatrixSetLink><TileMatrixSet>w</TileMatrixSet></TileMatrixSetLink>{resource}</Layer>
    <TileMatrixSet><ows:Identifier>c</ows:Identifier><ows:SupportedCRS>urn:ogc:def:crs:EPSG::4490</ows:SupportedCRS>
    </TileMatrixSet>
    <TileMatrixSet><ows:Identifier>w</ows:Identifier><ows:SupportedCRS>{crs}</ows:SupportedCRS>{matrices}
    </TileMatrixSet>
  </Contents>
</Capabilities>""".encode()


TIANDITU = "https://t0.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetCapabilities&VERSION=1.0.0&tk=KEY123"


def test_a_kvp_wmts_like_tianditu_becomes_a_tile_template_with_its_key():
    found = basemap.from_capabilities(capabilities(rest=False), TIANDITU)
    assert found["layer"] == "vec" and (found["min_zoom"], found["max_zoom"]) == (1, 18)
    assert found["matrices"] == [str(z) for z in range(1, 19)]
    assert found["tiles"] == ("http://t0.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                              "&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&tk=KEY123"
                              "&TILEMATRIX={m}&TILEROW={y}&TILECOL={x}")


def test_a_restful_wmts_becomes_its_resource_url_template():
    found = basemap.from_capabilities(capabilities(rest=True, first=0, last=20),
                                      "https://wmts.city.example/WMTSCapabilities.xml")
    assert found["tiles"] == "https://wmts.city.example/rest/vec/default/w/{m}/{y}/{x}.png"
    assert found["matrices"][:2] == ["EPSG:3857:0", "EPSG:3857:1"] and found["max_zoom"] == 20


@pytest.mark.parametrize(("document", "problem"), [
    (capabilities(rest=False, crs="urn:ogc:def:crs:EPSG::4490"), "Web Mercator"),
    (capabilities(rest=False, tile=512), "256-pixel"),
    (b"<html>not found</html>", "not a WMTS capabilities document"),
])
def test_a_wmts_that_cannot_be_drawn_is_refused_saying_why(document, problem):
    with pytest.raises(ValueError, match=problem):
        basemap.from_capabilities(document, TIANDITU)


def test_a_named_layer_that_is_not_there_is_refused_naming_the_others():
    with pytest.raises(ValueError, match="no layer 'img'.*lonlat, vec"):
        basemap.from_capabilities(capabilities(rest=False), TIANDITU, layer="img")


def test_an_entity_in_a_capabilities_document_is_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    document = capabilities(rest=False).replace(
        b'<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE c [<!ENTITY x SYSTEM "file://{secret}">]>'.encode())
    document = document.replace(b"<ows:Identifier>vec</ows:Identifier>", b"<ows:Identifier>&x;</ows:Identifier>", 1)
    try:
        found = basemap.from_capabilities(document, TIANDITU)
    except ValueError:
        return
    assert "do not read" not in repr(found)


def test_zoom_0_s_scale_is_one_256_pixel_tile_across_the_world_at_0_28_mm_a_pixel():
    assert math.isclose(basemap.ZOOM0_SCALE * 0.00028 * 256, 2 * basemap.HALF_WORLD, rel_tol=1e-9)
