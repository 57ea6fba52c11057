"""Reading a city's four levels from GeoJSON and turning them into a validated ``Hierarchy``.

One FeatureCollection per level (``hq``, ``subcenter``, ``station``, ``grid``). A feature's id comes from
``properties.id`` or else the feature's ``id``, its name from ``properties.name`` (else the id), and an
optional ``properties.parent`` names its parent; otherwise the parent is found geometrically. An import
with any error finding yields no hierarchy at all: a half-imported city would route cases to nobody.
"""
from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from . import validation as v
from .areas import LEVELS, Area, Hierarchy, parent_level
from .validation import Finding, error, warning

__all__ = ["RawFeature", "Finding", "parse_level", "build_hierarchy", "load_city_dir"]

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


def load_city_dir(path: str | Path) -> dict[str, dict]:
    """The levels of a city kept in a folder: ``city.toml`` maps levels to file names
    (``grid = "planning-areas.geojson"``); without it the files are ``hq.geojson``, ``subcenter.geojson``,
    ``station.geojson`` and ``grid.geojson``. A level whose file is not there is left out, for
    ``build_hierarchy`` to report."""
    folder = Path(path)
    manifest = folder / "city.toml"
    names = tomllib.loads(manifest.read_text("utf-8")) if manifest.exists() else {}
    levels = {}
    for level in LEVELS:
        file = folder / str(names.get(level, f"{level}.geojson"))
        if file.exists():
            levels[level] = json.loads(file.read_text("utf-8"))
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
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        findings.append(error(level, None, "not_a_feature", f"item #{index} of the {level} file is not a Feature"))
        return None
    props = feature.get("properties") or {}
    area_id = props.get("id", feature.get("id"))
    if area_id is None or str(area_id) == "":
        findings.append(error(level, None, "missing_id", f"{level} feature #{index} has no id"))
        return None
    area_id = str(area_id)
    geometry = feature.get("geometry")
    if not geometry:
        findings.append(error(level, area_id, "missing_geometry", f"{level} {area_id} has no geometry"))
        return None
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in POLYGONAL:
        what = f"a {kind}" if isinstance(kind, str) else "not a GeoJSON geometry"
        findings.append(error(level, area_id, "unsupported_geometry",
                              f"{level} {area_id} is {what}; only Polygon and MultiPolygon are areas"))
        return None
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, shapely.errors.ShapelyError) as exc:
        findings.append(error(level, area_id, "invalid_geometry", f"{level} {area_id} cannot be read: {exc}"))
        return None
    parent = props.get("parent")
    parent = None if parent is None or str(parent) == "" else str(parent)
    return RawFeature(area_id, str(props.get("name") or area_id), level, parent, geom)


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
    except (CRSError, ProjError, TypeError) as exc:
        return None, [error(level, None, "unsupported_crs", f"the {level} file declares a crs that cannot be used "
                                                           f"({json.dumps(crs_member)}): {exc}")]
    return transformer, [warning(level, None, "reprojected",
                                 f"the {level} file is in {name} ({crs.name}); reprojected to WGS84 lon/lat")]


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
    done = 0
    for level in LEVELS:
        report("overlaps", done, total)
        findings += v.check_overlaps(level, kept_ids[level], local[level], overlap_tolerance_m2, frame)
        done += len(features[level])
    report("overlaps", total, total)

    parents: dict[str, list[str | None]] = {"hq": [None] * len(keep["hq"])}
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
        done += len(features[level])
    report("parents", total, total)
    report("gaps", total, total)

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
