"""A case's detail says the limit of its current level, in the unit the policy gives it: the limit comes from
the policy frozen onto the case, follows the case up the levels."""
from __future__ import annotations

import pytest
import requests

from tests.support.system import a_point_in_grid, auth, embedded_system, token, wait_for_case


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

