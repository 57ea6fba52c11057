import json
from pathlib import Path

import pytest
import shapely
import shapely.ops
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box, shape

from services.dispatch.citygen import generate_city, hierarchy_from_city
from services.dispatch.domain.areas import Area, Hierarchy
from services.dispatch.domain.locate import Candidate, Locator, OutsideCity, metres_per_degree

REPO = Path(__file__).resolve().parents[2]
GEOD = Geod(ellps="WGS84")


# --- a generated city ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def city():
    return hierarchy_from_city(generate_city(1500, seed=7))


@pytest.fixture(scope="module")
def locator(city):
    return Locator(city)


def test_every_grids_representative_point_routes_to_that_grid_and_its_ancestors(city, locator):
    grids = city.level("grid")
    points = [g.geometry.representative_point() for g in grids]
    batch = locator.locate_many([p.x for p in points], [p.y for p in points])
    for grid, from_batch in zip(grids, batch, strict=True):
        chain = city.ancestors(grid.id)
        expected = [chain[level].id for level in ("grid", "station", "subcenter", "hq")]
        assert from_batch is not None
        assert list(from_batch.owners.ids().values())[::-1] == expected
        assert from_batch.owners.grid.name == grid.name
        assert (from_batch.triage, from_batch.candidates, from_batch.owners.owned_level().area) == (False, (), "grid")
    for point, from_batch in list(zip(points, batch, strict=True))[::50]:
        assert locator.locate(point.x, point.y) == from_batch


def shared_edges(city, *, same_station: bool):
    """Pairs of grids that share an edge, with the midpoint of that edge."""
    grids = city.level("grid")
    tree = shapely.STRtree([g.geometry for g in grids])
    for i, grid in enumerate(grids):
        for j in tree.query(grid.geometry, predicate="touches"):
            other = grids[j]
            edge = grid.geometry.intersection(other.geometry)
            if edge.geom_type == "LineString" and (grid.parent == other.parent) == same_station and i < j:
                yield grid, other, edge.interpolate(0.5, normalized=True)


@pytest.mark.parametrize("same_station", [True, False])
def test_a_point_on_a_shared_edge_always_goes_to_the_grid_whose_id_sorts_lowest(city, locator, same_station):
    pairs = list(shared_edges(city, same_station=same_station))[:20]
    assert pairs
    for a, b, midpoint in pairs:
        assert a.geometry.covers(midpoint) and b.geometry.covers(midpoint)  # truly on both boundaries
        owner = min(a.id, b.id)
        found = {locator.locate(midpoint.x, midpoint.y).owners.grid.id for _ in range(3)}
        found |= {loc.owners.grid.id for loc in locator.locate_many([midpoint.x] * 3, [midpoint.y] * 3)}
        assert found == {owner}
        assert locator.locate(midpoint.x, midpoint.y).owners.station.id == city.get(owner).parent


def test_a_corner_shared_by_four_grids_goes_to_the_lowest_id(city, locator):
    grid = city.level("grid")[700]
    x0, y0, x1, y1 = grid.geometry.bounds
    corner = shapely.Point(x1, y1)
    touching = sorted(g.id for g in city.level("grid") if g.geometry.covers(corner))
    assert len(touching) == 4
    assert locator.locate(x1, y1).owners.grid.id == touching[0]
    assert locator.locate_many([x1], [y1])[0].owners.grid.id == touching[0]


@pytest.mark.parametrize("lon, lat", [(13.4, 52.5), (0.0, 0.0), (float("nan"), 27.9)])
def test_a_point_far_outside_the_city_is_rejected(locator, lon, lat):
    with pytest.raises(OutsideCity):
        locator.locate(lon, lat)
    assert locator.locate_many([lon], [lat]) == [None]


def test_a_point_inside_the_city_bounding_box_but_outside_its_outline_is_rejected(city, locator):
    outline = city.level("hq")[0].geometry
    x0, y0, x1, y1 = outline.bounds
    corner = next(p for p in (shapely.Point(x0 + 1e-4, y0 + 1e-4), shapely.Point(x1 - 1e-4, y1 - 1e-4))
                  if not outline.covers(p))
    with pytest.raises(OutsideCity):
        locator.locate(corner.x, corner.y)
    assert locator.locate_many([corner.x, 102.264], [corner.y, 27.894])[0] is None


# --- a small hand-made city with holes in it ----------------------------------------------------------------
#
# Cells of 0.002° (about 193 m east-west and 222 m north-south at 30°N). Grids A..F in two rows of three, with
# E (top middle) missing; station ST covers all six cells; the sub-center and headquarters reach further east.
#
#   y=2  +----+----+----+                       hq / sub-center: x 0..4, y 0..2 (sub-center x 0..3)
#        | D  | .. | F  |   .. = the gap        station: x 0..3
#   y=1  +----+----+----+
#        | A  | B  | C  |
#   y=0  +----+----+----+

LON0, LAT0, CELL = 110.0, 30.0, 0.002


def cell(col, row, cols=1, rows=1):
    return box(LON0 + col * CELL, LAT0 + row * CELL, LON0 + (col + cols) * CELL, LAT0 + (row + rows) * CELL)


def at(col: float, row: float) -> tuple[float, float]:
    return LON0 + col * CELL, LAT0 + row * CELL


def small_city(*extra_grids: Area) -> Hierarchy:
    grids = {"A": cell(0, 0), "B": cell(1, 0), "C": cell(2, 0), "D": cell(0, 1), "F": cell(2, 1)}
    return Hierarchy([
        Area("HQ", "指挥部", "hq", None, cell(0, 0, 4, 2)),
        Area("SC", "分中心", "subcenter", "HQ", cell(0, 0, 3, 2)),
        Area("ST", "工作站", "station", "SC", cell(0, 0, 3, 2)),
        *(Area(name, f"网格{name}", "grid", "ST", geom) for name, geom in grids.items()),
        *extra_grids,
    ])


def columns(*points) -> tuple[list[float], list[float]]:
    """(lons, lats) of some (lon, lat) points, as locate_many takes them."""
    return [p[0] for p in points], [p[1] for p in points]


def geodesic_m(a, b) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def test_a_point_in_a_gap_between_grids_goes_to_its_station_for_triage_with_the_nearest_grids():
    point = at(1.4, 1.6)
    location = Locator(small_city()).locate(*point)
    assert location.owners.ids() == {"hq": "HQ", "subcenter": "SC", "station": "ST", "grid": None}
    assert location.triage and location.owners.owned_level().area == "station"
    assert [c.id for c in location.candidates] == ["D", "F", "B"]  # west 0.4 cell, east 0.6, south 0.6
    distances = [c.distance_m for c in location.candidates]
    assert distances == sorted(distances)
    # against geodesics on the WGS84 ellipsoid to the nearest point of each edge
    assert distances[0] == pytest.approx(geodesic_m(point, at(1, 1.6)), rel=0.005)
    assert distances[1] == pytest.approx(geodesic_m(point, at(2, 1.6)), rel=0.005)
    assert distances[2] == pytest.approx(geodesic_m(point, at(1.4, 1)), rel=0.005)
    assert 75 < distances[0] < 80 and 110 < distances[1] < 120 and 130 < distances[2] < 135


def test_batch_and_single_point_triage_agree():
    locator = Locator(small_city())
    assert locator.locate_many(*columns(at(1.4, 1.6))) == [locator.locate(*at(1.4, 1.6))]


def test_candidates_stop_at_the_radius_and_at_the_requested_number():
    point = at(1.4, 1.6)
    assert [c.id for c in Locator(small_city(), candidate_radius_m=120).locate(*point).candidates] == ["D", "F"]
    assert [c.id for c in Locator(small_city(), candidates=1).locate(*point).candidates] == ["D"]
    assert Locator(small_city(), candidate_radius_m=20).locate(*point).candidates == ()


def test_a_point_outside_every_station_but_inside_the_city_goes_to_headquarters_for_triage():
    point = at(3.5, 0.9)  # headquarters reaches one cell further east than the sub-center
    location = Locator(small_city()).locate(*point)
    assert (location.owners.grid, location.owners.station, location.owners.subcenter) == (None, None, None)
    assert location.owners.hq.id == "HQ" and location.triage and location.owners.owned_level().area == "hq"
    assert [c.id for c in location.candidates] == ["C", "F", "B"]
    assert location.candidates[0].distance_m == pytest.approx(geodesic_m(point, at(3, 0.9)), rel=0.005)


def test_a_point_in_a_subcenter_but_in_no_station_goes_to_the_subcenter_for_triage():
    hierarchy = small_city()
    station = hierarchy.get("ST")
    narrowed = Hierarchy([a if a.id != "ST" else Area("ST", station.name, "station", "SC", cell(0, 0, 2, 2))
                          for a in hierarchy])
    location = Locator(narrowed).locate(*at(2.5, 1.5))  # grid F's cell is now outside the station...
    assert location.owners.grid.id == "F"  # ...but a point in a grid still belongs to that grid
    location = Locator(Hierarchy([a for a in narrowed if a.id != "F"])).locate(*at(2.5, 1.5))
    assert (location.owners.grid, location.owners.station, location.owners.subcenter.id) == (None, None, "SC")
    assert location.owners.owned_level().area == "subcenter" and location.triage


def test_a_point_in_a_grids_hole_is_not_that_grids_and_an_island_in_the_hole_owns_its_points():
    ring = Polygon(cell(1, 1).exterior.coords, [cell(1.25, 1.25, 0.5, 0.5).exterior.coords])
    donut = Area("E1", "环形网格", "grid", "ST", ring)
    island = Area("E2", "岛", "grid", "ST", cell(1.4, 1.4, 0.2, 0.2))
    locator = Locator(small_city(donut, island))
    assert locator.locate(*at(1.1, 1.1)).owners.grid.id == "E1"
    assert locator.locate(*at(1.5, 1.5)).owners.grid.id == "E2"
    in_hole = locator.locate(*at(1.3, 1.3))  # in the hole, outside the island
    assert in_hole.owners.grid is None and in_hole.owners.station.id == "ST"
    assert in_hole.candidates[0].id in {"E1", "E2"}
    batch = locator.locate_many(*columns(at(1.1, 1.1), at(1.5, 1.5), at(1.3, 1.3)))
    assert [loc.owners.grid and loc.owners.grid.id for loc in batch] == ["E1", "E2", None]


def test_every_part_of_a_multipolygon_grid_routes_to_it():
    twin = Area("E", "双片网格", "grid", "ST", MultiPolygon([cell(1, 1, 0.4, 1), cell(1.6, 1, 0.4, 1)]))
    locator = Locator(small_city(twin))
    assert locator.locate(*at(1.2, 1.5)).owners.grid.id == "E"
    assert locator.locate(*at(1.8, 1.5)).owners.grid.id == "E"
    assert locator.locate(*at(1.5, 1.5)).triage


def test_a_hierarchy_with_a_grid_that_reaches_no_headquarters_is_refused():
    orphan = Area("X", "孤儿网格", "grid", "NO-SUCH-STATION", cell(1, 1))
    with pytest.raises(ValueError, match="'X'"):
        Locator(small_city(orphan))


def test_a_location_serialises_to_the_api_shape():
    location = Locator(small_city()).locate(*at(1.4, 1.6))
    assert location.to_dict()["grid"] is None
    assert location.to_dict()["station"] == {"id": "ST", "name": "工作站"}
    assert location.to_dict()["candidates"][0] == {"id": "D", "distance_m": location.candidates[0].distance_m}
    assert isinstance(location.candidates[0], Candidate)


def test_metres_per_degree_agrees_with_geodesics_within_a_hundredth_of_a_percent():
    for lat in (0.0, 27.9, 52.5, 70.0):
        mx, my = metres_per_degree(lat)
        assert mx * 0.01 == pytest.approx(geodesic_m((10.0, lat), (10.01, lat)), rel=1e-4)
        assert my * 0.01 == pytest.approx(geodesic_m((10.0, lat - 0.005), (10.0, lat + 0.005)), rel=1e-4)


# --- Berlin: a real city ------------------------------------------------------------------------------------

BERLIN_FILES = {
    "hq": "berlin-lor-city.geojson",
    "subcenter": "berlin-lor-districts.geojson",
    "station": "berlin-lor-district-regions-until-2020.geojson",
    "grid": "berlin-lor-planning-areas-until-2020.geojson",
}


def berlin_directory() -> Path:
    """The project's copy of the Berlin LOR data, else the shared one next to the checkout."""
    for directory in (REPO / "examples" / "berlin", REPO.parent / "shared" / "data" / "berlin-lor-2020"):
        if all((directory / name).is_file() for name in BERLIN_FILES.values()):
            return directory
    pytest.fail("Berlin LOR data not found in examples/berlin/ or ../shared/data/berlin-lor-2020/")


def load_berlin() -> Hierarchy:
    """Planning areas → district regions → districts → the city, parents from the id prefixes.

    The upstream files give two planning areas the id 06010102, and one of them lies in Charlottenburg (district
    region 040304), not in 060101; examples/berlin renumbers it 04030417. Should the upstream copy be read, a
    planning area outside the district region its id names is kept under the region that holds it, renamed if
    its id is taken, so that every real polygon is still there to route to.
    """
    directory = berlin_directory()
    collections = {level: json.loads((directory / name).read_text(encoding="utf-8"))["features"]
                   for level, name in BERLIN_FILES.items()}
    parent_of = {"hq": lambda i: None, "subcenter": lambda i: "0", "station": lambda i: i[:2], "grid": lambda i: i[:6]}
    grid_ids = [f["properties"]["id"] for f in collections["grid"]]
    stations = {f["properties"]["id"]: shape(f["geometry"]) for f in collections["station"]}
    areas = []
    for level, features in collections.items():
        for feature in features:
            props, geom = feature["properties"], shape(feature["geometry"])
            area_id, parent = props["id"], parent_of[level](props["id"])
            if level == "grid" and not stations[parent].covers(geom.representative_point()):
                parent = next(s for s, g in stations.items() if g.covers(geom.representative_point()))
                area_id += "-misplaced" if grid_ids.count(area_id) > 1 else ""
            areas.append(Area(area_id, props["name"], level, parent, geom))
    return Hierarchy(areas)


@pytest.fixture(scope="module")
def berlin():
    hierarchy = load_berlin()
    return hierarchy, Locator(hierarchy)


def test_berlin_has_its_four_levels_with_unique_ids(berlin):
    hierarchy, _ = berlin
    assert [len(hierarchy.level(level)) for level in ("hq", "subcenter", "station", "grid")] == [1, 12, 138, 448]
    assert len({area.id for area in hierarchy}) == len(hierarchy)


def test_every_berlin_planning_area_routes_to_itself_its_district_region_and_its_district(berlin):
    hierarchy, locator = berlin
    planning_areas = hierarchy.level("grid")
    points = [area.geometry.representative_point() for area in planning_areas]
    batch = locator.locate_many([p.x for p in points], [p.y for p in points])
    not_by_prefix = []
    for area, point, from_batch in zip(planning_areas, points, batch, strict=True):
        location = locator.locate(point.x, point.y)
        assert location == from_batch
        assert location.owners.grid.id == area.id and not location.triage
        assert location.owners.station.id == area.parent
        assert location.owners.subcenter.id == area.parent[:2]
        assert location.owners.hq.id == "0"
        if location.owners.station.id != area.id[:6]:
            not_by_prefix.append(area.id)
    assert len(not_by_prefix) <= 1  # only the misnumbered repeat of 06010102, if the data still has it


def test_points_in_the_slivers_between_berlins_outline_and_its_planning_areas_go_to_triage(berlin):
    hierarchy, locator = berlin
    city = hierarchy.level("hq")[0].geometry
    slivers = city.difference(shapely.union_all([a.geometry for a in hierarchy.level("grid")]))
    largest = sorted(shapely.get_parts(slivers), key=lambda p: p.area, reverse=True)[:10]
    points = [sliver.representative_point() for sliver in largest]
    batch = locator.locate_many([p.x for p in points], [p.y for p in points])
    for point, from_batch in zip(points, batch, strict=True):
        location = locator.locate(point.x, point.y)
        assert location == from_batch
        assert location.owners.grid is None and location.triage and location.owners.hq.id == "0"
        assert location.owners.owned_level().area in ("station", "subcenter", "hq")
        assert location.candidates, "a border sliver is metres from a planning area"
        distances = [c.distance_m for c in location.candidates]
        assert distances == sorted(distances) and distances[-1] <= 500
        # bracket the local-projection distance: at least the degree distance scaled by the shorter degree,
        # at most the geodesic to the point of the polygon nearest in degrees
        nearest = hierarchy.get(location.candidates[0].id).geometry
        on_edge = shapely.ops.nearest_points(nearest, point)[0]
        mx, my = metres_per_degree(point.y)
        assert nearest.distance(point) * min(mx, my) * 0.99 - 0.05 <= distances[0]
        assert distances[0] <= geodesic_m((point.x, point.y), (on_edge.x, on_edge.y)) * 1.01 + 0.05
