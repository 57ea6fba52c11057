"""Reading GeoJSON levels, and importing the real city of Berlin (examples/berlin/, CC BY 4.0)."""
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from services.dispatch.domain.geojson import build_hierarchy, load_city_dir, parse_level
from services.dispatch.domain.validation import ERROR, WARNING

BERLIN = Path(__file__).parent.parent.parent / "examples" / "berlin"
SQUARE = shapely.geometry.mapping(shapely.box(13.0, 52.0, 13.01, 52.01, ccw=True))


def collection(*features, crs=None) -> dict:
    fc = {"type": "FeatureCollection", "features": list(features)}
    if crs is not None:
        fc["crs"] = {"type": "name", "properties": {"name": crs}}
    return fc


def feature(properties=None, geometry=SQUARE, **members) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": geometry, **members}


# --- parse_level ---------------------------------------------------------------------------------


def test_a_feature_takes_its_id_name_and_parent_from_its_properties():
    [area], findings = parse_level(collection(feature({"id": "G1", "name": "Mitte", "parent": "S1"})), "grid")

    assert findings == []
    assert (area.id, area.name, area.level, area.parent) == ("G1", "Mitte", "grid", "S1")
    assert area.geometry.equals(shapely.geometry.shape(SQUARE))


def test_a_feature_without_an_id_property_uses_the_feature_id_and_is_named_by_it():
    [area], findings = parse_level(collection(feature({}, id=42)), "grid")

    assert findings == []
    assert (area.id, area.name, area.parent) == ("42", "42", None)


def test_a_feature_with_no_id_at_all_is_reported_by_its_position():
    areas, findings = parse_level(collection(feature({"id": "A"}), feature({"name": "nameless"})), "grid")

    assert [a.id for a in areas] == ["A"]
    assert [(f.level, f.feature_id, f.problem) for f in findings] == [("grid", None, "missing_id")]
    assert "#1" in findings[0].detail


def test_something_other_than_a_feature_collection_is_an_error():
    areas, findings = parse_level({"type": "Feature", "geometry": SQUARE}, "station")

    assert areas == []
    assert [(f.level, f.feature_id, f.problem, f.severity) for f in findings] == [
        ("station", None, "not_feature_collection", ERROR)]


def test_a_missing_geometry_and_a_point_are_errors_naming_the_feature():
    point = {"type": "Point", "coordinates": [13.0, 52.0]}
    areas, findings = parse_level(collection(feature({"id": "A"}, None), feature({"id": "B"}, point)), "grid")

    assert areas == []
    assert [(f.feature_id, f.problem) for f in findings] == [("A", "missing_geometry"), ("B", "unsupported_geometry")]
    assert "Point" in findings[1].detail


def test_a_geometry_that_cannot_be_read_is_an_invalid_geometry_error():
    broken = {"type": "Polygon", "coordinates": [[[13.0, 52.0], [13.01]]]}
    areas, findings = parse_level(collection(feature({"id": "A"}, broken)), "grid")

    assert areas == []
    assert [(f.feature_id, f.problem) for f in findings] == [("A", "invalid_geometry")]


@pytest.mark.parametrize("name", ["urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:EPSG::4326", "EPSG:4326"])
def test_a_wgs84_crs_member_is_read_as_lon_lat_without_a_finding(name):
    [area], findings = parse_level(collection(feature({"id": "A"}), crs=name), "grid")

    assert findings == []
    assert area.geometry.bounds == (13.0, 52.0, 13.01, 52.01)


def test_a_declared_projected_crs_is_reprojected_to_lon_lat_with_a_warning():
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:25833", always_xy=True)
    ring = [list(to_utm.transform(x, y)) for x, y in SQUARE["coordinates"][0]]
    utm = {"type": "Polygon", "coordinates": [ring]}

    [area], findings = parse_level(collection(feature({"id": "A"}, utm), crs="urn:ogc:def:crs:EPSG::25833"), "grid")

    assert [(f.level, f.feature_id, f.problem, f.severity) for f in findings] == [
        ("grid", None, "reprojected", WARNING)]
    assert "ETRS89 / UTM zone 33N" in findings[0].detail
    assert area.geometry.bounds == pytest.approx((13.0, 52.0, 13.01, 52.01), abs=1e-9)


def test_an_unknown_crs_is_an_error_and_no_feature_is_read():
    areas, findings = parse_level(collection(feature({"id": "A"}), crs="urn:ogc:def:crs:EPSG::999999"), "grid")

    assert areas == []
    assert [(f.feature_id, f.problem, f.severity) for f in findings] == [(None, "unsupported_crs", ERROR)]


# --- load_city_dir -------------------------------------------------------------------------------


def test_a_city_folder_is_read_through_its_manifest():
    levels = load_city_dir(BERLIN)

    assert {level: len(fc["features"]) for level, fc in levels.items()} == {
        "hq": 1, "subcenter": 12, "station": 138, "grid": 448}


def test_a_city_folder_without_a_manifest_is_read_from_files_named_after_the_levels(tmp_path):
    (tmp_path / "hq.geojson").write_text('{"type": "FeatureCollection", "features": []}')

    assert load_city_dir(tmp_path) == {"hq": {"type": "FeatureCollection", "features": []}}


# --- Berlin --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def berlin_levels():
    return load_city_dir(BERLIN)


@pytest.fixture(scope="module")
def berlin(berlin_levels):
    return build_hierarchy(berlin_levels)


def test_berlin_imports_without_errors_in_four_levels(berlin):
    hierarchy, findings = berlin

    assert [f for f in findings if f.severity == ERROR] == []
    assert {level: len(hierarchy.level(level)) for level in ("hq", "subcenter", "station", "grid")} == {
        "hq": 1, "subcenter": 12, "station": 138, "grid": 448}


def test_berlin_parents_found_by_geometry_follow_the_official_id_prefixes(berlin, berlin_levels):
    hierarchy, _ = berlin
    assert not any("parent" in f["properties"] for fc in berlin_levels.values() for f in fc["features"])

    assert all(grid.parent == grid.id[:6] for grid in hierarchy.level("grid"))
    assert all(station.parent == station.id[:2] for station in hierarchy.level("station"))
    assert all(subcenter.parent == "0" for subcenter in hierarchy.level("subcenter"))


def test_berlin_keeps_its_multipolygons_and_names(berlin):
    hierarchy, _ = berlin

    mitte = hierarchy.get("01")
    assert mitte.name == "Mitte" and mitte.geometry.geom_type == "MultiPolygon"
    assert hierarchy.ancestors("04030417")["subcenter"].name == "Charlottenburg-Wilmersdorf"


def test_berlin_planning_areas_in_utm_with_a_declared_crs_import_the_same(berlin_levels):
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:25833", always_xy=True)
    features = berlin_levels["grid"]["features"]
    geoms = shapely.transform(np.array([shapely.geometry.shape(f["geometry"]) for f in features]),
                              lambda x, y: to_utm.transform(x, y), interleaved=False)
    grid = collection(*[{**f, "geometry": shapely.geometry.mapping(g)} for f, g in zip(features, geoms, strict=True)],
                      crs="urn:ogc:def:crs:EPSG::25833")

    hierarchy, findings = build_hierarchy({**berlin_levels, "grid": grid})

    # the same two gap summaries as the file in lon/lat: reprojection adds no slivers of its own
    assert [(f.level, f.problem) for f in findings] == [("grid", "reprojected"), ("subcenter", "gaps"),
                                                        ("station", "gaps")]
    assert all(g.parent == g.id[:6] for g in hierarchy.level("grid"))
