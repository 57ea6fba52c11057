"""The command-center actions API over real HTTP: every refusal has its status, and two people acting on one
case at once cannot both win."""
from __future__ import annotations

import pytest
import requests

from tests.support.system import a_point_in_grid, auth, embedded_system, token, wait_for_case


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data = tmp_path_factory.mktemp("actions")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin)
        other_grid, _, _ = a_point_in_grid(base, admin, index=1)
        people = {"worker": token(data, "grid_worker", area=grid, user="wang"),
                  "other_worker": token(data, "grid_worker", area=other_grid, user="liu"),
                  "command": token(data, "command", user="chen"), "admin": admin}
        yield base, people, (lon, lat), data


def new_case(system) -> str:
    base, people, (lon, lat), _ = system
    filed = requests.post(f"{base}/intake/v1/reports", headers=auth(people["worker"]), timeout=10, json={
        "category": "street_light", "description": "lamp out", "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    wait_for_case(base, filed.json()["id"], people["worker"])
    return filed.json()["id"]


def read(base, case_id, who) -> tuple[dict, str]:
    response = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(who), timeout=10)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["ETag"]


def post(base, case_id, who, body, etag=None):
    headers = auth(who, **({"If-Match": etag} if etag else {}))
    return requests.post(f"{base}/escalation/v1/cases/{case_id}/actions", headers=headers, json=body, timeout=10)


def test_the_owner_acts_with_the_etag_and_gets_the_new_one(system):
    base, people, _, _ = system
    case_id = new_case(system)
    case, etag = read(base, case_id, people["worker"])
    assert "acknowledge" in case["actions"] and "reopen" not in case["actions"]
    response = post(base, case_id, people["worker"], {"action": "acknowledge", "note": "on my way"}, etag)
    assert response.status_code == 200 and response.json()["status"] == "acknowledged"
    assert response.headers["ETag"] != etag
    assert response.json()["timeline"][-1] == {**response.json()["timeline"][-1], "type": "acknowledged",
                                               "actor": "wang", "level": 1, "note": "on my way"}


def test_two_people_acting_on_one_case_the_second_is_told_someone_else_acted_first(system):
    base, people, _, _ = system
    case_id = new_case(system)
    _, etag = read(base, case_id, people["worker"])
    first = post(base, case_id, people["worker"], {"action": "acknowledge"}, etag)
    second = post(base, case_id, people["command"], {"action": "escalate", "reason": "too slow"}, etag)
    assert first.status_code == 200
    assert second.status_code == 412 and second.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(("who", "body", "status"), [
    ("worker", {"action": "acknowledge"}, 428),  # no If-Match at all
    ("command", {"action": "resolve", "note": "done"}, 403),  # not the level-1 owner
    ("other_worker", {"action": "acknowledge"}, 404),  # outside the caller's area
    ("worker", {"action": "resolve"}, 422),  # what was done is required
    ("worker", {"action": "return", "level": 1, "reason": "x"}, 422),  # no level below the grid
    ("worker", {"action": "explode"}, 422),  # not an action
    ("worker", {"action": "acknowledge", "owner": "me"}, 422),  # a field the API does not take
    ("command", {"action": "reopen", "reason": "x"}, 409),  # only a closed case reopens
])
def test_each_refusal_has_its_status_and_changes_nothing(system, who, body, status):
    base, people, _, _ = system
    case_id = new_case(system)
    before, etag = read(base, case_id, people["worker"])
    response = post(base, case_id, people[who], body, None if status == 428 else etag)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    after, etag_after = read(base, case_id, people["worker"])
    assert etag_after == etag and after["timeline"] == before["timeline"]


def test_a_stale_etag_is_a_412(system):
    base, people, _, _ = system
    case_id = new_case(system)
    response = post(base, case_id, people["worker"], {"action": "acknowledge"}, '"999"')
    assert response.status_code == 412


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "resolve"}, "note"),
    ({"action": "escalate"}, "reason"),
    ({"action": "acknowledge", "reason": "x"}, "reason"),
])
def test_a_missing_or_unexpected_argument_is_named_in_the_problem(system, body, field):
    base, people, _, _ = system
    case_id = new_case(system)
    _, etag = read(base, case_id, people["worker"])
    response = post(base, case_id, people["worker"], body, etag)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_if_match_star_acts_on_the_case_as_it_is_now(system):
    base, people, _, _ = system
    case_id = new_case(system)
    response = post(base, case_id, people["worker"], {"action": "acknowledge"}, "*")
    assert response.status_code == 200 and response.json()["status"] == "acknowledged"
