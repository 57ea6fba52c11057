from services.dispatch.citygen import generate_city, hierarchy_from_city
from services.dispatch.domain.locate import Locator
from services.dispatch.domain.routing import route
from shared.vocabulary import Level

CITY = generate_city(grids=16, stations=4, subcenters=2, seed=3)
LOCATOR = Locator(hierarchy_from_city(CITY))
GRID = CITY["grid"]["features"][0]["properties"]


def located():
    from shapely.geometry import shape

    point = shape(CITY["grid"]["features"][0]["geometry"]).representative_point()
    return LOCATOR.locate(point.x, point.y)


def test_an_ordinary_category_starts_at_the_grid_that_holds_the_point():
    placed, level = route(located(), LOCATOR)
    owners = placed.owners
    assert level == Level.GRID and owners.grid.id == GRID["id"]


def test_an_urgent_category_skips_to_its_start_level_and_keeps_the_areas_below():
    placed, level = route(located(), LOCATOR, category_start="subcenter")
    owners = placed.owners
    assert level == Level.SUBCENTER and owners.grid.id == GRID["id"]


def test_a_category_with_a_named_unit_goes_to_that_unit_wherever_the_point_is():
    unit = CITY["station"]["features"][-1]["properties"]["id"]
    placed, level = route(located(), LOCATOR, unit=unit)
    owners = placed.owners
    assert level == Level.STATION and owners.station.id == unit and owners.grid is None
    assert owners.subcenter.id == CITY["station"]["features"][-1]["properties"]["parent"]


def test_a_named_unit_missing_from_the_hierarchy_falls_back_to_the_location():
    placed, level = route(located(), LOCATOR, unit="NOT-A-UNIT")
    owners = placed.owners
    assert level == Level.GRID and owners.grid.id == GRID["id"]
