"""Reports as phones send them, on the embedded system: GCJ-02 positions, no GPS fix, accuracy, the
phone's clock, and a worker's own list."""
from __future__ import annotations

import pytest
import requests

from shared.gcj02 import wgs84_to_gcj02
from tests.support.system import a_point_in_grid, auth, embedded_system, report_at_level, token, wait_for_case


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data = tmp_path_factory.mktemp("reports")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin, index=3)
        worker = token(data, "grid_worker", area=grid, user="chen")
        yield base, admin, worker, grid, (lon, lat)


def post(base, who, body, key=None):
    headers = auth(who, **({"Idempotency-Key": key} if key else {}))
    return requests.post(f"{base}/intake/v1/reports", json=body, headers=headers, timeout=10)


def test_a_gcj02_position_from_a_chinese_map_sdk_lands_in_its_true_grid(system):
    base, admin, worker, grid, (lon, lat) = system
    glon, glat = wgs84_to_gcj02(lon, lat)
    response = post(base, worker, {"category": "street_light", "description": "amap",
                                   "location": {"lon": glon, "lat": glat, "crs": "gcj02", "accuracy": 8}})
    assert response.status_code == 201, response.text
    stored = response.json()["location"]
    assert abs(stored["lon"] - lon) < 1e-6 and abs(stored["lat"] - lat) < 1e-6 and stored["accuracy"] == 8
    assert report_at_level(base, response.json()["id"], worker, 1, timeout=20)["owner_area_id"] == grid


@pytest.mark.parametrize("location", [None, {"lon": 0, "lat": 0}, {"lon": 0.0, "lat": 0.0, "accuracy": 3},
                                      "far-from-accurate"], ids=["no location", "0,0", "0.0,0.0", "accuracy 5 km"])
def test_a_grid_worker_without_a_usable_fix_reports_to_their_own_grid_flagged_unverified(system, location):
    base, admin, worker, grid, (lon, lat) = system
    body = {"category": "street_light", "description": "no fix"}
    if location == "far-from-accurate":
        location = {"lon": lon + 0.2, "lat": lat + 0.2, "accuracy": 5000}
    if location is not None:
        body["location"] = location
    response = post(base, worker, body)
    assert response.status_code == 201, response.text
    assert response.json()["location_unverified"] is True
    report = report_at_level(base, response.json()["id"], worker, 1, timeout=20)
    assert report["owner_area_id"] == grid
    case, _ = wait_for_case(base, response.json()["id"], admin, timeout=20)
    assert "location unverified" in case["timeline"][0]["note"] and not case["triage"]


def test_staff_must_send_a_location(system):
    base, admin, *_ = system
    response = post(base, admin, {"category": "street_light", "description": "desk"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "location"


@pytest.mark.parametrize("crs", ["bd09", "", 1])
def test_an_unknown_crs_is_refused_naming_the_field(system, crs):
    base, admin, worker, grid, (lon, lat) = system
    response = post(base, worker, {"category": "street_light", "description": "x",
                                   "location": {"lon": lon, "lat": lat, "crs": crs}})
    assert response.status_code == 422 and "location.crs" in [e["field"] for e in response.json()["errors"]]


def test_the_phones_clock_is_kept_apart_from_the_servers(system):
    base, admin, worker, grid, (lon, lat) = system
    response = post(base, worker, {"category": "street_light", "description": "clock", "client_time":
                                   "2020-01-01T08:00:00+08:00", "location": {"lon": lon, "lat": lat}})
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["client_time"].startswith("2020-01-01T00:00:00") and report["reported_at"] > "2026"
    naive = post(base, worker, {"category": "street_light", "description": "clock", "client_time":
                                "2020-01-01T08:00:00", "location": {"lon": lon, "lat": lat}})
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "client_time"


def test_a_worker_lists_their_own_reports_with_status_and_level_page_by_page(system):
    base, admin, worker, grid, (lon, lat) = system
    ids = [post(base, worker, {"category": "street_light", "description": f"mine {i}",
                               "location": {"lon": lon, "lat": lat}}, key=f"mine-{i}").json()["id"] for i in range(3)]
    report_at_level(base, ids[-1], worker, 1, timeout=20)
    first = requests.get(f"{base}/intake/v1/reports", params={"mine": 1, "page_size": 2}, headers=auth(worker),
                         timeout=10).json()
    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]] and first["total"] >= 3
    assert first["items"][0]["level"] == 1 and first["items"][0]["status"] == "open"
    second = requests.get(f"{base}/intake/v1/reports", params={"mine": 1, "page_size": 2, "page": 2},
                          headers=auth(worker), timeout=10).json()
    assert second["items"][0]["id"] == ids[0]
    assert requests.get(f"{base}/intake/v1/reports", params={"mine": 1}, headers=auth(admin),
                        timeout=10).json()["total"] == 0  # the admin filed nothing (their one try was refused)


def test_a_nearby_report_is_linked_to_the_open_case_and_staff_can_unlink_it(tmp_path):
    with embedded_system(tmp_path, env={"GRIDCASE_DUPLICATE_RADIUS_M": "50"}) as base:
        admin = token(tmp_path, "admin")
        grid, lon, lat = a_point_in_grid(base, admin, index=1)
        first_worker = token(tmp_path, "grid_worker", area=grid, user="ma")
        second_worker = token(tmp_path, "grid_worker", area=grid, user="niu")
        body = {"category": "street_light", "description": "lamp", "location": {"lon": lon, "lat": lat}}
        first = post(base, first_worker, body).json()
        report_at_level(base, first["id"], admin, 1, timeout=20)
        near = {**body, "location": {"lon": lon, "lat": lat + 20 / 111_195}}
        again = post(base, second_worker, near)
        assert again.status_code == 201, again.text
        linked = again.json()["duplicate_of"]
        assert linked["id"] == first["id"] and linked["number"] == first["number"] and linked["level"] == 1
        cases = requests.get(f"{base}/escalation/v1/cases", headers=auth(admin), timeout=10).json()["items"]
        assert again.json()["id"] not in {c["id"] for c in cases}

        refused = requests.post(f"{base}/intake/v1/reports/{again.json()['id']}/unlink", headers=auth(first_worker),
                                timeout=10)
        assert refused.status_code == 403
        unlinked = requests.post(f"{base}/intake/v1/reports/{again.json()['id']}/unlink", headers=auth(admin),
                                 timeout=10)
        assert unlinked.status_code == 200 and unlinked.json()["duplicate_of"] is None
        assert report_at_level(base, again.json()["id"], second_worker, 1, timeout=20)["owner_area_id"] == grid
        assert requests.post(f"{base}/intake/v1/reports/{first['id']}/unlink", headers=auth(admin),
                             timeout=10).status_code == 409
