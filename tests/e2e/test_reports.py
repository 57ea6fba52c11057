"""Reports as phones send them, on the embedded system: GCJ-02 positions, no GPS fix, accuracy, the
phone's clock, and a worker's own list."""
from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests

from shared.gcj02 import wgs84_to_gcj02
from tests.support.system import a_point_in_grid, auth, embedded_system, report_at_level, token, wait_for_case


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """The embedded system and its data directory (where tokens are signed)."""
    data = tmp_path_factory.mktemp("reports")
    with embedded_system(data) as base:
        yield base, data


@pytest.fixture(scope="module")
def system(running):
    base, data = running
    admin = token(data, "admin")
    grid, lon, lat = a_point_in_grid(base, admin, index=3)
    worker = token(data, "grid_worker", area=grid, user="chen")
    return base, admin, worker, grid, (lon, lat)


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


def report_until(base: str, report_id: str, token_: str, wanted, timeout: float = 20.0) -> dict:
    """Poll intake until ``wanted(report)`` (intake follows escalation asynchronously); the last report seen."""
    deadline = time.monotonic() + timeout
    while True:
        report = requests.get(f"{base}/intake/v1/reports/{report_id}", headers=auth(token_), timeout=5).json()
        if wanted(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.02)


def instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def test_a_report_carries_its_cases_deadline_as_escalation_sets_it(system):
    """The phone shows the time left from the report alone: ``deadline_at`` is the case's deadline once it
    opens, follows it up a level, and is in the worker's list too."""
    base, admin, worker, grid, (lon, lat) = system
    filed = post(base, worker, {"category": "street_light", "description": "deadline",
                                "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    assert filed.json()["deadline_at"] is None  # no case yet
    case, _ = wait_for_case(base, filed.json()["id"], worker, timeout=20)
    assert case["deadline"] is not None
    report = report_until(base, case["id"], worker, lambda r: r["deadline_at"] is not None)
    assert instant(report["deadline_at"]) == instant(case["deadline"]), (report, case["deadline"])
    assert report["deadline_at"].endswith("Z") or report["deadline_at"].endswith("+00:00")
    listed = requests.get(f"{base}/intake/v1/reports", params={"mine": 1}, headers=auth(worker), timeout=10).json()
    assert [r["deadline_at"] for r in listed["items"] if r["id"] == case["id"]] == [report["deadline_at"]]
    # up to the station: a new level, a new deadline, followed
    detail = requests.get(f"{base}/escalation/v1/cases/{case['id']}", headers=auth(worker), timeout=10)
    moved = requests.post(f"{base}/escalation/v1/cases/{case['id']}/actions",
                          json={"action": "escalate", "reason": "the station must coordinate"},
                          headers=auth(worker, **{"If-Match": detail.headers["ETag"]}), timeout=10)
    assert moved.status_code == 200, moved.text
    assert moved.json()["deadline"] != case["deadline"]
    report = report_until(base, case["id"], worker, lambda r: r["level"] == 2)
    assert report["level"] == 2 and instant(report["deadline_at"]) == instant(moved.json()["deadline"]), report


def act(base: str, case_id: str, who: str, action: str, **arguments) -> dict:
    """An action on a case, with the ETag read just before; returns the case."""
    url = f"{base}/escalation/v1/cases/{case_id}"
    detail = requests.get(url, headers=auth(who), timeout=10)
    answer = requests.post(f"{url}/actions", json={"action": action, **arguments},
                           headers=auth(who, **{"If-Match": detail.headers["ETag"]}), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_case_list_says_who_verifies_each_case_and_what_was_done_as_each_case_says(system, running):
    """A phone's "to verify" reads the list alone: each item's ``can_verify`` is the case's own page's, for the
    grid worker (a fix the station made) and for the station (a fix the grid worker made on the spot), and
    ``resolution_note`` says what was done."""
    base, admin, worker, grid, (lon, lat) = system
    located = requests.get(f"{base}/dispatch/v1/locate", params={"lon": lon, "lat": lat}, headers=auth(admin),
                           timeout=10).json()
    by_station, on_the_spot = (post(base, worker, {"category": "street_light", "description": f"verify {i}",
                                                   "location": {"lon": lon, "lat": lat}}).json()["id"]
                               for i in range(2))
    for case_id in (by_station, on_the_spot):
        wait_for_case(base, case_id, worker, timeout=20)
    station = token(running[1], "station", area=located["station"]["id"], user="station-verifier")
    act(base, by_station, worker, "escalate", reason="needs the station's van")
    act(base, by_station, station, "resolve", note="bulb replaced by the station")
    act(base, on_the_spot, worker, "resolve", note="fixed on the spot")
    for who, verifies in ((worker, by_station), (station, on_the_spot)):
        listed = requests.get(f"{base}/escalation/v1/cases", params={"status": "verifying", "page_size": 500},
                              headers=auth(who), timeout=10).json()["items"]
        mine = {c["id"]: c for c in listed if c["id"] in (by_station, on_the_spot)}
        assert set(mine) == {by_station, on_the_spot}, listed
        for case_id, item in mine.items():
            detail = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(who), timeout=10).json()
            assert item["can_verify"] is detail["can_verify"] is (case_id == verifies), (who, case_id)
        assert mine[by_station]["resolution_note"] == "bulb replaced by the station"
        assert mine[on_the_spot]["resolution_note"] == "fixed on the spot"
    others = requests.get(f"{base}/escalation/v1/cases", params={"status": "open"}, headers=auth(worker),
                          timeout=10).json()["items"]
    assert others and all(c["can_verify"] is False and c["resolution_note"] is None for c in others)
