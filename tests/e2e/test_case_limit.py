"""A case's detail says the limit of its current level in the unit the policy gives it: from the policy frozen
onto the case when it opened, level by level as the case climbs."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.system import a_point_in_grid, auth, embedded_system, token, wait_for_case

CALENDAR_HOURS_POLICY = Path(__file__).resolve().parents[1] / "support" / "calendar_hours_policy.toml"


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data = tmp_path_factory.mktemp("limit")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin)
        yield base, token(data, "grid_worker", area=grid, user="zhao"), (lon, lat)


def new_case(system, category: str) -> str:
    base, worker, (lon, lat) = system
    filed = requests.post(f"{base}/intake/v1/reports", headers=auth(worker), timeout=10, json={
        "category": category, "description": "limit in its own unit", "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    wait_for_case(base, filed.json()["id"], worker)
    return filed.json()["id"]


def read(base, case_id, who) -> tuple[dict, str]:
    response = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(who), timeout=10)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["ETag"]


@pytest.mark.parametrize(("category", "limit"), [
    ("street_light", {"amount": 4.0, "unit": "working_hours"}),  # the policy's defaults, level 1
    ("neighbour_dispute", {"amount": 1.0, "unit": "working_days"}),  # the category's own ladder
])
def test_the_detail_gives_the_current_levels_limit_in_its_own_unit(system, category, limit):
    base, worker, _ = system
    case, _ = read(base, new_case(system, category), worker)
    assert case["level"] == 1 and case["limit"] == limit


def test_the_limit_follows_the_case_up_a_level(system):
    base, worker, _ = system
    case_id = new_case(system, "street_light")
    _, etag = read(base, case_id, worker)
    escalated = requests.post(f"{base}/escalation/v1/cases/{case_id}/actions", json={
        "action": "escalate", "reason": "needs the station's lift"},
        headers=auth(worker, **{"If-Match": etag}), timeout=10)
    assert escalated.status_code == 200, escalated.text
    assert escalated.json()["level"] == 2 and escalated.json()["limit"] == {"amount": 8.0, "unit": "working_hours"}



def test_the_limit_is_the_policy_the_case_opened_under_not_the_running_one(tmp_path):
    with embedded_system(tmp_path) as base:
        admin = token(tmp_path, "admin")
        grid, lon, lat = a_point_in_grid(base, admin)
        worker = token(tmp_path, "grid_worker", area=grid, user="qian")
        before = new_case((base, worker, (lon, lat)), "street_light")
    # the city moves to a policy in hours around the clock; the case keeps the working hours it opened with
    with embedded_system(tmp_path, env={"GRIDCASE_POLICY_FILE": str(CALENDAR_HOURS_POLICY)}) as base:
        after = new_case((base, worker, (lon, lat)), "street_light")
        assert read(base, before, worker)[0]["limit"] == {"amount": 4.0, "unit": "working_hours"}
        assert read(base, after, worker)[0]["limit"] == {"amount": 4.0, "unit": "hours"}
