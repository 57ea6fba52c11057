"""Reading a city's four levels from GeoJSON and turning them into a validated ``Hierarchy``.

One FeatureCollection per level (``hq``, ``subcenter``, ``station``, ``grid``). A feature's id comes from
``properties.id`` or else the feature's ``id``, its name from ``properties.name`` (else the id), and an
optional ``properties.parent`` names its parent; otherwise the parent is found geometrically. An import
with any error finding yields no hierarchy at all: a half-imported city would route cases to nobody.
"""
from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from shared.fields import LIMITS, storable_problem

from . import validation as v
from .areas import LEVELS, Area, Hierarchy, parent_level
from .validation import Finding, error, warning

__all__ = ["RawFeature", "Finding", "AreaFileError", "parse_level", "build_hierarchy", "load_city_dir", "read_city_dir",
           "read_level_file"]

POLYGONAL = ("Polygon", "MultiPolygon")
WGS84 = CRS.from_epsg(4326)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RawFeature:
    """A feature as read from a file, before it is checked and given a parent. Geometry in WGS84."""

    id: str
    name: str
    level: str
    parent: str | None
    geometry: BaseGeometry


class AreaFileError(ValueError):
    """Area files that cannot be read; ``findings`` says which file and why."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__("; ".join(f.detail for f in findings[:10]))


def read_level_file(path: str | Path, level: str) -> tuple[dict | None, list[Finding]]:
    """One level's GeoJSON file as a JSON value, or None and an error finding naming the file.

    Text is UTF-8 with or without a byte-order mark (Esri tools write one), or UTF-16/32 with a BOM. A file
    that is not JSON, not text, nested deeper than Python's parser goes, or holds an integer Python will
    not convert answers a finding (``unreadable_file``), never a traceback.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [error(level, None, "unreadable_file", f"{path.name}: cannot be read ({exc.strerror or exc})")]
    try:
        return json.loads(data), []
    except UnicodeDecodeError as exc:
        reason = f"is not UTF-8 text (byte {exc.start}); save it as UTF-8"
    except json.JSONDecodeError as exc:
        reason = f"is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    except RecursionError:
        reason = "is nested too deeply to be GeoJSON"
    except ValueError as exc:
        reason = f"holds a value that cannot be read: {str(exc)[:120]}"
    return None, [error(level, None, "unreadable_file", f"the {level} file {path.name} {reason}")]


def read_city_dir(path: str | Path) -> tuple[dict[str, dict], list[Finding]]:
    """The levels of a city kept in a folder, and the findings of reading them. ``city.toml`` maps levels
    to file names (``grid = "planning-areas.geojson"``); without it the files are ``hq.geojson``,
    ``subcenter.geojson``, ``station.geojson`` and ``grid.geojson``. A level whose file is not there is
    left out, for ``build_hierarchy`` to report."""
    folder = Path(path)
    manifest = folder / "city.toml"
    findings: list[Finding] = []
    names: dict = {}
    if manifest.exists():
        try:
            names = tomllib.loads(manifest.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            findings.append(error("city", None, "unreadable_file", f"{manifest.name} is not TOML: {exc}"))
    levels = {}
    for level in LEVELS:
        file = folder / str(names.get(level, f"{level}.geojson"))
        if file.exists():
            value, found = read_level_file(file, level)
            findings += found
            if value is not None:
                levels[level] = value
    return levels, findings


def load_city_dir(path: str | Path) -> dict[str, dict]:
    """``read_city_dir`` for callers that want the levels or an ``AreaFileError``."""
    levels, findings = read_city_dir(path)
    if findings:
        raise AreaFileError(findings)
    return levels


def parse_level(fc: dict, level: str) -> tuple[list[RawFeature], list[Finding]]:
    """Read one level's FeatureCollection. Features that cannot be read are reported and left out."""
    if not isinstance(fc, dict) or fc.get("type") != "FeatureCollection" or not isinstance(fc.get("features"), list):
        return [], [error(level, None, "not_feature_collection",
                          f"the {level} file is not a GeoJSON FeatureCollection")]
    transformer, findings = _crs_transformer(fc.get("crs"), level)
    if v.has_errors(findings):
        return [], findings
    features = []
    for index, feature in enumerate(fc["features"]):
        raw = _parse_feature(feature, index, level, findings)
        if raw is not None:
            features.append(raw)
    if transformer is not None and features:
        geoms = shapely.transform(np.array([f.geometry for f in features], dtype=object),
                                  lambda x, y: transformer.transform(x, y, errcheck=False), interleaved=False)
        features = [RawFeature(f.id, f.name, f.level, f.parent, g) for f, g in zip(features, geoms, strict=True)]
    return features, findings


def _parse_feature(feature, index: int, level: str, findings: list[Finding]) -> RawFeature | None:
    """One feature, or None and a finding naming it (by id when it has a readable one, else by number).

    The id is ``properties.id``, or the feature's own ``id`` when that property is missing, null or empty
    (QGIS and ogr2ogr write the id there). Ids and parents must fit the database (64 characters, no
    control characters or lone surrogates), names too (200 characters); a number is taken as its text.
    ``properties`` may be null or an object, nothing else.
    """
    where = f"{level} feature #{index}"  # its index in the features array
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        findings.append(error(level, None, "not_a_feature", f"item #{index} of the {level} file is not a Feature"))
        return None
    props = feature.get("properties")
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        findings.append(error(level, None, "invalid_properties",
                              f"{where}: properties must be a JSON object or null, not {_json_kind(props)}"))
        return None
    raw_id = props.get("id")
    if raw_id is None or raw_id == "":
        raw_id = feature.get("id")
    area_id, problem = _text(raw_id, LIMITS["area_id"])
    if area_id is None:
        findings.append(error(level, None, "missing_id", f"{where} has no id") if problem is None
                        else error(level, None, "invalid_id", f"{where}: its id {problem}"))
        return None
    name, problem = _text(props.get("name"), LIMITS["area_name"])
    if problem:
        findings.append(error(level, area_id, "invalid_name", f"{level} {area_id}: its name {problem}"))
        return None
    parent, problem = _text(props.get("parent"), LIMITS["area_id"])
    if problem:
        findings.append(error(level, area_id, "invalid_parent", f"{level} {area_id}: its parent {problem}"))
        return None
    geometry = feature.get("geometry")
    if not geometry:
        findings.append(error(level, area_id, "missing_geometry", f"{level} {area_id} has no geometry"))
        return None
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in POLYGONAL:
        what = f"a {kind}" if isinstance(kind, str) and len(kind) < 40 else "not a GeoJSON geometry"
        findings.append(error(level, area_id, "unsupported_geometry",
                              f"{level} {area_id} is {what}; only Polygon and MultiPolygon are areas"))
        return None
    problem = _coordinates_problem(kind, geometry.get("coordinates"))
    if problem:
        findings.append(error(level, area_id, "invalid_geometry", f"{level} {area_id} cannot be read: {problem}"))
        return None
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, shapely.errors.ShapelyError) as exc:
        findings.append(error(level, area_id, "invalid_geometry", f"{level} {area_id} cannot be read: {exc}"))
        return None
    return RawFeature(area_id, name or area_id, level, parent, geom)


def _text(value, max_length: int) -> tuple[str | None, str | None]:
    """A property as stored text: ``(text, None)``; ``(None, None)`` when absent (null or ""); or
    ``(None, why)`` when it cannot be an id or a name. Integers (and integral floats, as shapefiles
    keep numbers) are taken as their decimal text."""
    if value is None or value == "":
        return None, None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, f"is {_json_kind(value)}, not text or a number"
    if isinstance(value, float):
        if not value.is_integer():
            return None, f"is the number {value!r}, not text or an integer"
        value = int(value)
    text = str(value)
    if len(text) > max_length:
        return None, f"is {len(text)} characters long (starting {printable_start(text)}); at most {max_length}"
    problem = storable_problem(text)
    if problem:
        return None, f"{problem} ({printable_start(text)})"
    return text, None


def printable_start(text: str, length: int = 24) -> str:
    """The start of ``text``, quoted, with unprintable characters escaped: safe in any report."""
    head = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:length])
    return f"'{head}…'" if len(text) > length else f"'{head}'"


def _json_kind(value) -> str:
    return {dict: "an object", list: "an array", str: "text", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


_NUMBER = (int, float)
_ARRAY = (list, tuple)  # tuples: GeoJSON built in Python (shapely's mapping), not read from a file
_NUMBER_TYPES, _ARRAY_TYPES = frozenset(_NUMBER), frozenset(_ARRAY)


def _coordinates_problem(kind: str, coordinates) -> str | None:
    """What is wrong with a Polygon's or MultiPolygon's ``coordinates`` in plain words, or None.

    Checked before shapely sees them, because shapely (through numpy) either fails with a message about
    array shapes or quietly accepts what is not GeoJSON: positions given as text or booleans, a 2-D ring
    next to a 3-D one (the 2-D one gets NaN heights), rings too short to close.
    """
    multi = kind == "MultiPolygon"
    polygons = coordinates if multi else [coordinates]
    if not isinstance(polygons, _ARRAY) or (multi and coordinates is None):
        return "its coordinates are not an array"
    dims: set[int] = set()
    for p, polygon in enumerate(polygons, 1):
        if not isinstance(polygon, _ARRAY):
            return f"polygon {p} is not an array of rings" if multi else "its coordinates are not an array of rings"
        for r, ring in enumerate(polygon, 1):
            where = f"ring {r} of polygon {p}" if multi else f"ring {r}"
            if not isinstance(ring, _ARRAY):
                return f"{where} is not an array of positions"
            if len(ring) < 4:
                return f"{where} has {len(ring)} position(s); a closed ring needs at least 4"
            # Every position 2 or 3 numbers, checked by set operations at C speed (a loop over Berlin's
            # 460,000 numbers took 0.22 s); the loop only finds the words for a bad one.
            ring_dims = set(map(len, ring)) if set(map(type, ring)) <= _ARRAY_TYPES else {0}
            if not (ring_dims <= {2, 3} and set(map(type, itertools.chain.from_iterable(ring))) <= _NUMBER_TYPES):
                problem = _position_problem(ring, where)
                if problem:
                    return problem
                ring_dims = {len(position) for position in ring}  # sequences of other kinds, but sound
            if len(ring_dims) > 1:
                return f"{where} mixes 2-D and 3-D positions"
            dims |= ring_dims
            if len(dims) > 1:
                return f"the geometry mixes 2-D and 3-D positions ({where} differs from the rings before it)"
    return None


def _position_problem(ring, where: str) -> str | None:
    """The first position of ``ring`` that is not 2 or 3 numbers, in plain words (None: all are)."""
    for k, position in enumerate(ring, 1):
        if not isinstance(position, _ARRAY) or not 2 <= len(position) <= 3 \
                or not all(type(x) in _NUMBER for x in position):
            shown = json.dumps(position)[:60] if _jsonable(position) else _json_kind(position)
            return (f"position {k} of {where} is {shown}; a position is [longitude, latitude] "
                    "or [longitude, latitude, height], in numbers")
    return None


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError, RecursionError):
        return False


def _crs_transformer(crs_member, level: str) -> tuple[Transformer | None, list[Finding]]:
    """A transformer to WGS84 lon/lat for a declared non-WGS84 ``crs``, or None when the file is WGS84.

    The ``crs`` member was dropped from GeoJSON by RFC 7946 but real exports still carry it. EPSG:4326
    is read as lon/lat whatever its official axis order, as every GeoJSON writer does.
    """
    if crs_member is None:
        return None, []
    props = crs_member.get("properties") if isinstance(crs_member, dict) else None
    props = props if isinstance(props, dict) else {}
    name = crs_member if isinstance(crs_member, str) else props.get("name") or (
        f"EPSG:{props['code']}" if "code" in props else None)
    try:
        crs = CRS.from_user_input(name)
        if crs.equals(WGS84, ignore_axis_order=True):
            return None, []
        if not (crs.is_geographic or crs.is_projected):
            raise CRSError(f"{crs.name} is not a horizontal coordinate system")
        transformer = Transformer.from_crs(crs, WGS84, always_xy=True)
    except (CRSError, ProjError, TypeError, ValueError) as exc:  # ValueError: text with lone surrogates
        return None, [error(level, None, "unsupported_crs", f"the {level} file declares a crs that cannot be used "
                                                           f"({_json_start(crs_member)}): {str(exc)[:200]}")]
    return transformer, [warning(level, None, "reprojected",
                                 f"the {level} file is in {name} ({crs.name}); reprojected to WGS84 lon/lat")]


def _json_start(value, length: int = 200) -> str:
    """The start of ``value`` as JSON, for a report (a file's ``crs`` member may be anything, of any size)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return _json_kind(value)
    return text if len(text) <= length else text[:length] + "…"


def build_hierarchy(levels: dict[str, dict], *, repair: bool = False, overlap_tolerance_m2: float = 1.0,
                    gap_tolerance_ratio: float = 0.001, outside_tolerance_ratio: float = 0.01,
                    progress: Progress | None = None) -> tuple[Hierarchy | None, list[Finding]]:
    """Parse, check and link the four levels; the ``Hierarchy`` comes back only when no finding is an error.

    Tolerances: siblings may share up to ``overlap_tolerance_m2`` (digitising noise); a parent may
    have up to ``gap_tolerance_ratio`` of its area outside all its children before a ``gap`` warning;
    a child may stick out of its parent by up to ``outside_tolerance_ratio`` of its own area (or by
    ``overlap_tolerance_m2``, whichever is larger) before an ``outside_parent`` error.
    ``progress(step, done, total)`` is called as the steps ``parse``, ``geometry``, ``overlaps``,
    ``parents`` and ``gaps`` advance, counted in features (``parse`` in levels).

    The land of each level that none of its children covers is summarised in one ``gaps`` warning per
    level, however small its pieces. Findings are capped at ``validation.MAX_LISTED`` per level, problem
    and severity (the rest counted in one more finding), so the report's size is bounded whatever the
    files hold.
    """
    report = progress or (lambda step, done, total: None)
    findings = [error(level, None, "unknown_level", f"{level} is not a level; the levels are {', '.join(LEVELS)}")
                for level in levels if level not in LEVELS]
    features: dict[str, list[RawFeature]] = {}
    for n, level in enumerate(LEVELS):
        report("parse", n, len(LEVELS))
        features[level], found = parse_level(levels[level], level) if level in levels else (
            [], [error(level, None, "missing_level", f"no {level} level was given")])
        if not features[level] and not v.has_errors(found):
            found.append(error(level, None, "empty_level", f"the {level} level has no features"))
        findings += found
    report("parse", len(LEVELS), len(LEVELS))
    total = sum(len(features[level]) for level in LEVELS)
    ids = {level: [f.id for f in features[level]] for level in LEVELS}
    findings += v.check_duplicate_ids(ids)

    lonlat, ok, done = {}, {}, 0
    for level in LEVELS:
        report("geometry", done, total)
        raw = np.array([f.geometry for f in features[level]], dtype=object)
        lonlat[level], ok[level], found = v.check_geometry(level, ids[level], raw, repair=repair)
        findings += found
        done += len(raw)
    findings += v.check_swapped(ids, lonlat, ok)
    report("geometry", total, total)

    keep = {level: np.flatnonzero(ok[level]) for level in LEVELS}
    kept_ids = {level: [ids[level][i] for i in keep[level]] for level in LEVELS}
    frame, local = _to_local({level: lonlat[level][keep[level]] for level in LEVELS})
    done, coverage = 0, {}
    for level in LEVELS:
        report("overlaps", done, total)
        found, coverage[level] = v.check_overlaps(level, kept_ids[level], local[level], overlap_tolerance_m2,
                                                  frame)
        findings += found
        done += len(features[level])
    report("overlaps", total, total)

    parents: dict[str, list[str | None]] = {"hq": [None] * len(keep["hq"])}
    # GEOS makes the levels' unions (for the gap summaries) without holding the GIL: a second thread
    # makes them while this one assigns parents (Berlin: 0.2 s of the import's 0.9 s, on two cores).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="area-unions") as pool:
        unions = {level: pool.submit(v.union, local[level], coverage=coverage[level]) for level in LEVELS}
        land = unions["hq"].result()
        done = len(features["hq"])
        for level in LEVELS[1:]:
            report("parents", done, total)
            upper = parent_level(level)
            declared = [features[level][i].parent for i in keep[level]]
            index, inside, found = v.assign_parents(
                level, kept_ids[level], local[level], declared, kept_ids[upper], local[upper],
                known_parent_ids=set(ids[upper]), overlap_tolerance_m2=overlap_tolerance_m2,
                outside_tolerance_ratio=outside_tolerance_ratio, frame=frame)
            findings += found
            parents[level] = [kept_ids[upper][k] if k >= 0 else None for k in index]
            report("gaps", done, total)
            findings += v.check_gaps(upper, kept_ids[upper], local[upper], index, inside, gap_tolerance_ratio, frame)
            child_land = unions[level].result()
            findings += v.summarise_gaps(upper, land, child_land, frame)
            land = child_land
            done += len(features[level])
    report("parents", total, total)
    report("gaps", total, total)

    findings = v.cap_findings(findings)
    if v.has_errors(findings):
        return None, findings
    areas = [Area(f.id, f.name, level, parent, geometry)
             for level in LEVELS
             for f, parent, geometry in zip(features[level], parents[level], lonlat[level], strict=True)]
    return Hierarchy(areas), findings


def _to_local(lonlat: dict[str, np.ndarray]) -> tuple[v.LocalFrame, dict[str, np.ndarray]]:
    """Every level in one ``LocalFrame`` centred on the headquarters (or on all features without one).
    A geometry that became invalid in the scaling (rounding can make nearly touching rings touch) is
    mended quietly: it was valid in the file."""
    everything = [g for g in lonlat.values() if len(g)]
    centre_from = lonlat["hq"] if len(lonlat["hq"]) else np.concatenate(everything) if everything else None
    frame = v.LocalFrame.around(centre_from) if centre_from is not None else v.LocalFrame(0.0, 0.0)
    local = {}
    for level, geoms in lonlat.items():
        scaled = frame.to_local(geoms)
        for i in np.flatnonzero(~shapely.is_valid(scaled)):
            scaled[i] = v.polygonal(shapely.make_valid(scaled[i], method="structure", keep_collapsed=False))
        local[level] = scaled
    return frame, local
