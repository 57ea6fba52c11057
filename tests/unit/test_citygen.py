import json
import re

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from services.dispatch.citygen import generate_city, hierarchy_from_city, write_city
from services.dispatch.domain.areas import LEVELS
from services.dispatch.domain.locate import metres_per_degree

ID_PATTERN = {
    "hq": r"HQ",
    "subcenter": r"SC\d{2,}",
    "station": r"SC\d{2,}-ST\d{2,}",
    "grid": r"SC\d{2,}-ST\d{2,}-G\d{4,}",
}


@pytest.fixture(scope="module")
def city():
    return generate_city(1500, 40, 6, seed=7)


def geometries(city, level):
    return np.array([shape(f["geometry"]) for f in city[level]["features"]])


def features(city, level):
    return city[level]["features"]


def test_the_same_seed_gives_byte_identical_json(city):
    assert json.dumps(generate_city(1500, 40, 6, seed=7)) == json.dumps(city)


def test_another_seed_gives_another_city(city):
    assert json.dumps(generate_city(1500, 40, 6, seed=8)) != json.dumps(city)


def test_each_level_has_the_requested_number_of_areas(city):
    assert {level: len(features(city, level)) for level in LEVELS} == \
        {"hq": 1, "subcenter": 6, "station": 40, "grid": 1500}


@pytest.mark.parametrize("grids", [1, 4, 7])
def test_a_tiny_city_caps_stations_and_subcenters_at_the_number_of_grids(grids):
    tiny = generate_city(grids)
    assert len(features(tiny, "grid")) == grids
    assert 1 <= len(features(tiny, "subcenter")) <= len(features(tiny, "station")) <= grids
    assert len(features(tiny, "hq")) == 1


def test_grids_tile_the_city_with_no_overlap_and_no_gap(city):
    grids = geometries(city, "grid")
    union = shapely.union_all(grids)
    hq = geometries(city, "hq")[0]
    assert shapely.area(grids).sum() == pytest.approx(union.area, rel=1e-9)  # no overlap
    assert union.area == pytest.approx(hq.area, rel=1e-9)  # no gap
    assert hq.symmetric_difference(union).area < 1e-9 * hq.area


def test_every_area_lies_inside_its_parent_and_is_valid(city):
    by_id = {f["properties"]["id"]: shape(f["geometry"]) for level in LEVELS for f in features(city, level)}
    for level in LEVELS:
        for feature in features(city, level):
            geom, parent = by_id[feature["properties"]["id"]], feature["properties"]["parent"]
            assert geom.is_valid and not geom.is_empty
            if level == "hq":
                assert parent is None
            else:
                assert by_id[parent].covers(geom), feature["properties"]["id"]


def test_ids_are_unique_readable_and_nest_by_prefix(city):
    ids = [f["properties"]["id"] for level in LEVELS for f in features(city, level)]
    assert len(ids) == len(set(ids))
    for level in LEVELS:
        for feature in features(city, level):
            props = feature["properties"]
            assert re.fullmatch(ID_PATTERN[level], props["id"]) and props["id"].isascii()
            assert props["name"]
            if level not in ("hq", "subcenter"):
                assert props["id"].startswith(props["parent"] + "-")


def test_grid_cells_measure_cell_m_metres_on_the_ground(city):
    mx, my = metres_per_degree(27.894)
    x0, y0, x1, y1 = shape(features(city, "grid")[0]["geometry"]).bounds
    assert (x1 - x0) * mx == pytest.approx(400, rel=0.01)
    assert (y1 - y0) * my == pytest.approx(400, rel=0.01)


def test_the_city_is_centred_on_the_requested_point():
    x0, y0, x1, y1 = shape(features(generate_city(300, center=(116.4, 39.9)), "hq")[0]["geometry"]).bounds
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((116.4, 39.9), abs=0.02)


def test_hierarchy_from_city_links_every_grid_to_headquarters(city):
    hierarchy = hierarchy_from_city(city)
    assert len(hierarchy) == 1 + 6 + 40 + 1500
    grid = hierarchy.level("grid")[123]
    chain = hierarchy.ancestors(grid.id)
    assert [chain[level].id for level in LEVELS] == ["HQ", grid.id[:4], grid.id[:9], grid.id]
    assert grid.geometry.equals(shape(next(f for f in features(city, "grid")
                                           if f["properties"]["id"] == grid.id)["geometry"]))


def test_write_city_writes_one_geojson_file_per_level(city, tmp_path):
    paths = write_city(city, tmp_path / "demo")
    assert sorted(p.name for p in paths) == ["grid.geojson", "hq.geojson", "station.geojson", "subcenter.geojson"]
    for level in LEVELS:
        assert json.loads((tmp_path / "demo" / f"{level}.geojson").read_text(encoding="utf-8")) == city[level]


def test_a_city_of_100000_grids_can_be_generated():
    big = generate_city(100_000)
    grids = features(big, "grid")
    assert len(grids) == 100_000
    assert len({f["properties"]["id"] for f in grids}) == 100_000
    assert len(features(big, "station")) == 40
