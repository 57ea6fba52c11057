"""The validation report of an area import: each broken fixture gives exactly the findings it should.

The fixtures (tests/fixtures/broken/, written by its make_fixtures.py) are a tiny city of 16 grids in
4 stations, 2 sub-centers and 1 headquarters, and copies of its grid level with one thing broken.
"""
import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import shapely

from services.dispatch.domain.geojson import build_hierarchy, load_city_dir
from services.dispatch.domain.validation import ERROR, WARNING, Finding, check_geometry

BROKEN = Path(__file__).parent.parent / "fixtures" / "broken"


@pytest.fixture(scope="module")
def clean_city() -> dict[str, dict]:
    return load_city_dir(BROKEN)


def city_with(clean_city, **levels) -> dict[str, dict]:
    """The clean city with some levels replaced: a fixture file name or a FeatureCollection."""
    city = copy.deepcopy(clean_city)
    for level, replacement in levels.items():
        city[level] = json.loads((BROKEN / replacement).read_text()) if isinstance(replacement, str) else replacement
    return city


def problems(findings: list[Finding], severity: str = ERROR) -> set[tuple]:
    return {(f.level, f.feature_id, f.problem) for f in findings if f.severity == severity}


def only(findings: list[Finding], problem: str) -> Finding:
    [finding] = [f for f in findings if f.problem == problem]
    return finding


def test_the_clean_fixture_city_imports_with_no_findings(clean_city):
    hierarchy, findings = build_hierarchy(clean_city)

    assert findings == []
    assert [len(hierarchy.level(level)) for level in ("hq", "subcenter", "station", "grid")] == [1, 2, 4, 16]
    assert hierarchy.get("G23").parent == "S2-A"
    assert hierarchy.get("S2-A").parent == "S2"


def test_a_bowtie_grid_is_rejected_with_the_self_intersection_point(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-bowtie.geojson"))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G22", "invalid_geometry")}
    assert "Self-intersection[13.015 52.015]" in only(findings, "invalid_geometry").detail


def test_repair_turns_a_bowtie_into_two_triangles_and_a_warning(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-bowtie.geojson"), repair=True)

    assert hierarchy is not None
    assert problems(findings) == set()
    assert ("grid", "G22", "repaired") in problems(findings, WARNING)
    repaired = hierarchy.get("G22").geometry
    assert repaired.is_valid and repaired.geom_type == "MultiPolygon" and len(repaired.geoms) == 2
    # the two triangles cover half the cell, so the other half of station S1-A is a gap (1/8 of it)
    gap = [f for f in findings if f.problem == "gap" and f.feature_id == "S1-A"]
    assert len(gap) == 1 and "(12.50%)" in gap[0].detail


def test_an_overlapping_grid_is_reported_with_both_ids_and_the_area(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-overlap.geojson"))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G11", "overlap")}
    overlap = only(findings, "overlap")
    assert overlap.other_id == "G12"
    # 0.002° of longitude × 0.01° of latitude at 52° N: 137 m × 1,113 m
    area = float(overlap.detail.split(" by ")[1].split(" m²")[0].replace(",", ""))
    assert area == pytest.approx(0.002 * 68_677 * 0.01 * 111_321, rel=0.005)


def test_an_overlap_below_the_tolerance_passes(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-overlap.geojson"),
                                          overlap_tolerance_m2=200_000)

    assert problems(findings) == set()
    assert hierarchy is not None


def test_a_grid_reaching_out_of_its_station_and_the_city_is_rejected(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-outside-parent.geojson"))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G14", "outside_parent")}
    finding = only(findings, "outside_parent")
    assert finding.other_id == "S2-A"
    assert "(33.3%)" in finding.detail


def test_a_grid_with_swapped_coordinates_is_named_with_a_hint(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-swapped.geojson"))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G22", "swapped_coordinates")}
    assert "(lat, lon) pairs" in only(findings, "swapped_coordinates").detail


def test_a_swapped_headquarters_is_found_against_its_sub_centers(clean_city):
    hq = copy.deepcopy(clean_city["hq"])
    ring = hq["features"][0]["geometry"]["coordinates"][0]
    hq["features"][0]["geometry"]["coordinates"] = [[[y, x] for x, y in ring]]

    hierarchy, findings = build_hierarchy(city_with(clean_city, hq=hq))

    assert hierarchy is None
    assert problems(findings) == {("hq", "C", "swapped_coordinates")}


def test_a_utm_file_with_a_declared_crs_is_reprojected_with_a_warning(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-utm.geojson"))

    assert hierarchy is not None
    assert problems(findings) == set()
    assert problems(findings, WARNING) == {("grid", None, "reprojected")}
    assert "EPSG::25833" in only(findings, "reprojected").detail
    x0, y0, x1, y1 = hierarchy.get("G11").geometry.bounds
    assert (x0, y0, x1, y1) == pytest.approx((13.0, 52.0, 13.01, 52.01), abs=1e-9)


def test_a_file_in_projected_metres_without_a_crs_is_out_of_range_for_every_grid(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-utm-no-crs.geojson"))

    assert hierarchy is None
    grid_ids = {f"G{r}{c}" for r in range(1, 5) for c in range(1, 5)}
    assert problems(findings) == {("grid", grid_id, "out_of_range") for grid_id in grid_ids}
    assert "projected metres" in findings[0].detail


def test_a_duplicate_grid_id_is_rejected(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-duplicate-ids.geojson"))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G11", "duplicate_id")}
    assert "used by 2 grid features" in only(findings, "duplicate_id").detail


def test_an_id_used_at_two_levels_is_rejected(clean_city):
    grid = copy.deepcopy(clean_city["grid"])
    grid["features"][0]["properties"]["id"] = "S1-A"

    hierarchy, findings = build_hierarchy(city_with(clean_city, grid=grid))

    assert hierarchy is None
    assert problems(findings) == {("grid", "S1-A", "duplicate_id")}
    assert "already used at level station" in only(findings, "duplicate_id").detail


def test_an_empty_geometry_is_rejected(clean_city):
    hierarchy, findings = build_hierarchy(city_with(clean_city, grid="grid-empty-geometry.geojson"))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G22", "empty_geometry")}


def test_coordinates_beyond_the_poles_are_out_of_range(clean_city):
    grid = copy.deepcopy(clean_city["grid"])
    grid["features"][5]["geometry"]["coordinates"][0][1][1] = 95.0

    hierarchy, findings = build_hierarchy(city_with(clean_city, grid=grid))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G22", "out_of_range")}


def test_a_missing_grid_leaves_a_gap_warning_on_its_station_and_still_imports(clean_city):
    grid = copy.deepcopy(clean_city["grid"])
    grid["features"] = [f for f in grid["features"] if f["properties"]["id"] != "G22"]

    hierarchy, findings = build_hierarchy(city_with(clean_city, grid=grid))

    assert hierarchy is not None
    assert problems(findings, WARNING) == {("station", "S1-A", "gap"), ("station", None, "gaps")}
    assert "(25.00%)" in only(findings, "gap").detail


def test_a_grid_outside_every_station_has_no_parent_and_names_the_nearest(clean_city):
    grid = copy.deepcopy(clean_city["grid"])
    away = shapely.geometry.mapping(shapely.box(13.05, 52.0, 13.06, 52.01))  # 0.01° east of the city
    grid["features"].append({"type": "Feature", "properties": {"id": "G99"}, "geometry": away})

    hierarchy, findings = build_hierarchy(city_with(clean_city, grid=grid))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G99", "no_parent")}
    finding = only(findings, "no_parent")
    assert finding.other_id == "S2-A"
    # 0.01° of longitude at 52° N, measured on the ellipsoid: 686 m
    assert re.search(r"is (\d+) m away", finding.detail)[1] == "686"


def test_a_declared_parent_wins_over_geometry_and_is_then_checked(clean_city):
    grid = copy.deepcopy(clean_city["grid"])
    grid["features"][0]["properties"]["parent"] = "S2-B"  # G11 lies in S1-A

    hierarchy, findings = build_hierarchy(city_with(clean_city, grid=grid))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G11", "outside_parent")}
    assert only(findings, "outside_parent").other_id == "S2-B"


def test_a_declared_parent_that_does_not_exist_is_rejected(clean_city):
    grid = copy.deepcopy(clean_city["grid"])
    grid["features"][0]["properties"]["parent"] = "S9-Z"

    hierarchy, findings = build_hierarchy(city_with(clean_city, grid=grid))

    assert hierarchy is None
    assert problems(findings) == {("grid", "G11", "unknown_parent")}


def test_a_missing_level_is_an_error(clean_city):
    city = copy.deepcopy(clean_city)
    del city["station"]

    hierarchy, findings = build_hierarchy(city)

    assert hierarchy is None
    assert ("station", None, "missing_level") in problems(findings)


def test_findings_serialise_to_plain_dicts(clean_city):
    _, findings = build_hierarchy(city_with(clean_city, grid="grid-overlap.geojson"))

    assert findings[0].to_dict() == {
        "level": "grid", "feature_id": "G11", "problem": "overlap", "severity": "error",
        "detail": findings[0].detail, "other_id": "G12"}


def test_progress_is_reported_for_every_step_up_to_its_total(clean_city):
    calls = []

    build_hierarchy(clean_city, progress=lambda step, done, total: calls.append((step, done, total)))

    finals = {step: (done, total) for step, done, total in calls}
    assert finals == {"parse": (4, 4), "geometry": (23, 23), "overlaps": (23, 23), "parents": (23, 23),
                      "gaps": (23, 23)}
    assert all(0 <= done <= total for _, done, total in calls)


def test_lat_lon_pairs_beyond_90_degrees_are_out_of_range_with_a_hint_to_swap_them():
    beijing_swapped = shapely.box(39.9, 116.3, 40.0, 116.4)  # (lat, lon) of a square in Beijing

    _, ok, findings = check_geometry("grid", ["B1"], np.array([beijing_swapped]), repair=False)

    assert not ok[0]
    assert [(f.feature_id, f.problem) for f in findings] == [("B1", "out_of_range")]
    assert "(lat, lon) pairs" in findings[0].detail
