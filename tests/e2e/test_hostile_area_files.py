"""Hostile area files over HTTP: ``POST /dispatch/v1/areas`` with what GIS tools write. Each file problem is a
422 whose findings name the level, the feature and the problem — bounded in size — and nothing is stored;
documented fallbacks are accepted. On SQLite and on PostgreSQL (which refuses an area id over 64
characters or holding a NUL, and a name over 200, where SQLite would store them)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests
import shapely

from services.dispatch.domain.geojson import load_city_dir
from tests.support.hostile import assert_problem, target_fixture

target = target_fixture()
BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "broken"
AREAS = "/dispatch/v1/areas"


@pytest.fixture(scope="module")
def city() -> dict:
    return load_city_dir(BROKEN)


def post(target, body: bytes) -> requests.Response:
    return requests.post(target.url("dispatch", AREAS), data=body, timeout=120,
                         headers={"Content-Type": "application/json", **target.auth()})


def levels_with(city, change) -> bytes:
    """The fixture city, not activated, with ``change(grid_features)`` applied, as JSON text (lone
    surrogates kept as escapes)."""
    levels = copy.deepcopy(city)
    change(levels["grid"]["features"])
    return json.dumps({"levels": levels, "activate": False}, ensure_ascii=True).encode()


def set_property(index, name, value):
    def change(features):
        features[index]["properties"][name] = value
    return change


def mixed_dimensions(features):
    ring = features[2]["geometry"]["coordinates"][0]
    ring[1] = [*ring[1], 34.0]


def properties_array(features):
    features[1]["properties"] = [1]


def geometry_type_with_a_surrogate(features):
    features[0]["geometry"]["type"] = "Poly\ud800gon"


REFUSED = [
    ("an area id of 65 characters", set_property(0, "id", "G" * 65), None, "invalid_id"),
    ("an area id with a NUL byte", set_property(0, "id", "G11\u0000"), None, "invalid_id"),
    ("an area id with a lone surrogate", set_property(0, "id", "G11\ud83d"), None, "invalid_id"),
    ("an area name of 201 characters", set_property(0, "name", "n" * 201), "G11", "invalid_name"),
    ("an area name with a NUL byte", set_property(0, "name", "Grid\u0000 11"), "G11", "invalid_name"),
    ("an area name with a lone surrogate", set_property(0, "name", "Grid \udc00"), "G11", "invalid_name"),
    ("a parent id with a NUL byte", set_property(0, "parent", "S1-A\u0000"), "G11", "invalid_parent"),
    ("properties that are an array", properties_array, None, "invalid_properties"),
    ("a ring mixing 2-D and 3-D positions", mixed_dimensions, "G13", "invalid_geometry"),
    ("a geometry type with a lone surrogate", geometry_type_with_a_surrogate, "G11", "unsupported_geometry"),
]


@pytest.mark.parametrize("what, change, feature_id, problem", REFUSED, ids=[r[0] for r in REFUSED])
def test_an_import_with_a_feature_that_cannot_be_stored_is_refused_with_a_finding_naming_it(
        target, city, what, change, feature_id, problem):
    before = target.counts()

    response = post(target, levels_with(city, change))

    findings = assert_problem(response, 422)["findings"]
    assert any(f["level"] == "grid" and f["feature_id"] == feature_id and f["problem"] == problem
               and f["severity"] == "error" for f in findings), findings
    assert all("inhomogeneous" not in f["detail"] for f in findings)
    assert target.counts() == before
    assert target.ready()


def test_a_crs_that_cannot_be_used_is_a_finding_on_the_level_however_it_is_written(target, city):
    for crs in ({"type": "name", "properties": {"name": "EPSG:4326\ud800"}}, "urn:" + "x" * 20_000, [1, [2]]):
        levels = copy.deepcopy(city)
        levels["grid"]["crs"] = crs

        response = post(target, json.dumps({"levels": levels}, ensure_ascii=True).encode())

        [finding] = [f for f in assert_problem(response, 422)["findings"] if f["problem"] == "unsupported_crs"]
        assert finding["level"] == "grid" and len(finding["detail"]) <= 600


def test_800_grids_piled_on_each_other_get_a_short_report(target, city):
    first = shapely.geometry.shape(city["grid"]["features"][0]["geometry"])

    def pile(features):
        features[:] = [{"type": "Feature", "properties": {"id": f"X{i}"}, "geometry": shapely.geometry.mapping(
            shapely.affinity.translate(first, xoff=i * 1e-7))} for i in range(800)]

    before = target.counts()

    response = post(target, levels_with(city, pile))

    assert len(response.content) < 100_000  # was 56 MB
    findings = assert_problem(response, 422)["findings"]
    assert sum(f["problem"] == "overlap" for f in findings) == 50
    assert any(f["problem"] == "overlaps" and "more pairs" in f["detail"] for f in findings)
    assert target.counts() == before


def test_an_import_body_with_a_utf8_byte_order_mark_and_null_id_properties_is_imported(target, city):
    def null_ids(features):
        for f in features:
            f["id"], f["properties"]["id"] = f["properties"]["id"], None  # as QGIS and ogr2ogr write them

    before = target.counts()

    response = post(target, b"\xef\xbb\xbf" + levels_with(city, null_ids))

    assert response.status_code == 201, response.text[:2000]
    assert response.json()["active"] is False
    after = target.counts()
    assert after["dispatch.area_versions"] == before["dispatch.area_versions"] + 1
    assert after["dispatch.areas"] == before["dispatch.areas"] + sum(len(city[level]["features"]) for level in city)
