import pytest
from pyproj import Geod

from shared.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02

GEOD = Geod(ellps="WGS84")

# (wgs lon, wgs lat, gcj lon, gcj lat): the published test vectors of the eviltransform project
KNOWN = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),  # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),  # Shenzhen
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),  # Beijing
]

CHINESE_CITIES = {
    "Xichang": (102.264, 27.894),
    "Beijing": (116.404, 39.915),
    "Shanghai": (121.4737, 31.2304),
    "Guangzhou": (113.2644, 23.1291),
    "Urumqi": (87.6168, 43.8256),
    "Harbin": (126.535, 45.8038),
    "Lhasa": (91.1409, 29.6456),
    "Sanya": (109.5119, 18.2528),
}


def metres_between(a, b) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


@pytest.mark.parametrize("wgs_lon, wgs_lat, gcj_lon, gcj_lat", KNOWN)
def test_wgs84_to_gcj02_matches_the_published_test_vectors(wgs_lon, wgs_lat, gcj_lon, gcj_lat):
    assert wgs84_to_gcj02(wgs_lon, wgs_lat) == pytest.approx((gcj_lon, gcj_lat), abs=1e-9)


@pytest.mark.parametrize("wgs_lon, wgs_lat, gcj_lon, gcj_lat", KNOWN)
def test_gcj02_to_wgs84_recovers_the_published_wgs84_position(wgs_lon, wgs_lat, gcj_lon, gcj_lat):
    assert metres_between(gcj02_to_wgs84(gcj_lon, gcj_lat), (wgs_lon, wgs_lat)) < 0.01


@pytest.mark.parametrize("city", sorted(CHINESE_CITIES))
def test_a_round_trip_through_gcj02_lands_within_half_a_metre(city):
    wgs = CHINESE_CITIES[city]
    gcj = wgs84_to_gcj02(*wgs)
    assert metres_between(wgs, gcj) > 50  # the offset is real, so the inverse has work to do
    assert metres_between(gcj02_to_wgs84(*gcj), wgs) < 0.5


@pytest.mark.parametrize("lon, lat", [(13.4050, 52.5200), (-74.006, 40.7128), (139.6917, 35.6895), (0.0, 0.0)])
def test_coordinates_outside_china_pass_through_unchanged(lon, lat):
    assert wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert gcj02_to_wgs84(lon, lat) == (lon, lat)
