"""Deadlines with a compressed clock: `GRIDCASE_TIME_SCALE=7200` makes a four-hour limit two seconds."""
from __future__ import annotations

import time

import pytest
import requests

from shared.clock import parse_time
from tests.support.system import ROOT, a_point_in_grid, auth, embedded_system, report_at_level, token, wait_for_case

SCALE = 7200.0


@pytest.fixture(scope="module")
def fast_clock_system(tmp_path_factory):
    data = tmp_path_factory.mktemp("deadlines")
    # the calendar-hour policy (the first policy format): the shipped one counts working hours, which a compressed clock
    # would stretch over nights and weekends
    policy = ROOT / "tests" / "support" / "calendar_hours_policy.toml"
    with embedded_system(data, env={"GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_POLICY_FILE": str(policy)}) as base:
        yield base, data


def test_an_unhandled_case_climbs_to_the_station_after_its_grid_deadline_and_not_before(fast_clock_system):
    base, data = fast_clock_system
    admin = token(data, "admin")
    grid, lon, lat = a_point_in_grid(base, admin)
    created = requests.post(f"{base}/intake/v1/reports", headers=auth(admin), timeout=5, json={
        "category": "street_light", "description": "lamp", "location": {"lon": lon, "lat": lat}}).json()
    case, _ = wait_for_case(base, created["id"], admin)
    assert case["level"] == 1
    deadline = parse_time(case["deadline"])
    real_wait = (deadline - parse_time(case["opened_at"])).total_seconds() / SCALE
    started = time.monotonic()
    while time.monotonic() - started < real_wait + 5:
        case = requests.get(f"{base}/escalation/v1/cases/{created['id']}", headers=auth(admin), timeout=5).json()
        if case["level"] == 2:
            break
        time.sleep(0.05)
    assert case["level"] == 2, "the scheduler escalated the case"
    escalated = case["timeline"][-1]
    assert escalated["type"] == "escalated" and escalated["level"] == 2
    assert parse_time(escalated["scheduled_at"]) == deadline
    lateness = (parse_time(escalated["at"]) - deadline).total_seconds() / SCALE
    assert 0 <= lateness <= 2.0, f"escalated {lateness:.2f} real seconds after the deadline"
    assert case["owner"]["level"] == 2 and case["owner"]["area_id"] == case["areas"]["station"]["id"]
    report = report_at_level(base, created["id"], admin, 2)
    assert report["level"] == 2 and report["owner_area_id"] == case["areas"]["station"]["id"]


def test_gridcase_up_starts_on_berlin(tmp_path):
    with embedded_system(tmp_path, "--city", str(ROOT / "examples/berlin")) as base:
        admin = token(tmp_path, "admin")
        # Alexanderplatz
        found = requests.get(f"{base}/dispatch/v1/locate", params={"lon": 13.4132, "lat": 52.5219},
                             headers=auth(admin), timeout=5).json()
        assert found["hq"]["name"] == "Berlin" and found["subcenter"]["id"] == "01"
        assert found["grid"]["id"].startswith(found["station"]["id"]) and len(found["grid"]["id"]) == 8
