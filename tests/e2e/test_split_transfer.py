"""What a split transfer did next, on the production topology with two gunicorn workers per service
(PostgreSQL, RabbitMQ): two transfers of one case at the same moment, one through each route (or both
through escalation's action), left escalation and intake disagreeing on the owner for good — the owner
escalation showed got 404 when it verified the fix, and another grid's worker verified and closed the
case. Here, after the race, the owner escalation shows resolves and verifies; the workers and stations
of the case's first grid and of the losing transfer's grid are refused (403 or 404) and close nothing,
and the case is closed once, by the owner's verifier."""
from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from shapely.geometry import shape

from harness.processes import wait_for
from tests.support.system import Production, auth, wait_for_case

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
SERVICES = ("intake", "dispatch", "escalation")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    from harness.servers import create_database, drop_database, purge_broker
    from tests.support.system import required_server

    broker_url, admin_url = required_server("GRIDCASE_TEST_BROKER_URL"), required_server("GRIDCASE_TEST_POSTGRES_URL")
    purge_broker(broker_url)
    names = {s: f"gridcase_split_{s}_{uuid.uuid4().hex[:10]}" for s in SERVICES}
    urls = {s: create_database(admin_url, n) for s, n in names.items()}
    production = Production(tmp_path_factory.mktemp("split"), broker_url, urls, web_workers=dict.fromkeys(SERVICES, 2))
    try:
        yield production.start()
    finally:
        production.processes.stop_all()
        for name in names.values():
            drop_database(admin_url, name)


def token(system, role: str, user: str, area: str | None = None) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user, "role": role, "iat": now, "exp": now + timedelta(hours=1), "jti": uuid.uuid4().hex}
    if area is not None:
        claims["area"] = area
    return jwt.encode(claims, system.env["GRIDCASE_SECRET"], algorithm="HS256")


@pytest.fixture(scope="module")
def grids(system) -> dict:
    """grid id → (its station, a point inside it), for grids of the city's first twelve stations."""
    features = requests.get(f"{system.urls['dispatch']}/dispatch/v1/areas", timeout=30, params={
        "level": "grid", "simplify": "false"}, headers=auth(token(system, "admin", "admin-user"))).json()["features"]
    out = {}
    for feature in features:
        point = shape(feature["geometry"]).representative_point()
        out[feature["properties"]["id"]] = (feature["properties"]["parent"], (point.x, point.y))
    return out


def three_grids_of_three_stations(grids: dict, skip: int) -> tuple[str, str, str]:
    by_station = {}
    for grid, (station, _) in sorted(grids.items()):
        by_station.setdefault(station, []).append(grid)
    stations = sorted(by_station)
    return tuple(by_station[stations[(skip + k) % len(stations)]][skip % 4] for k in (0, 4, 8))


def served_by(system, service: str) -> int:
    """How many gunicorn worker processes ``service``'s API booted."""
    log = (system.data / f"serve-{service}.log").read_text(errors="replace")
    return len(set(re.findall(r"Booting worker with pid: (\d+)", log)))


def case_of(system, case_id: str, who: str) -> tuple[dict, str]:
    answer = requests.get(f"{system.urls['escalation']}/escalation/v1/cases/{case_id}", headers=auth(who), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json(), answer.headers["ETag"]


def report_of(system, case_id: str, who: str) -> dict:
    answer = requests.get(f"{system.urls['intake']}/intake/v1/reports/{case_id}", headers=auth(who), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def act(system, case_id: str, who: str, body: dict, etag: str) -> requests.Response:
    return requests.post(f"{system.urls['escalation']}/escalation/v1/cases/{case_id}/actions", timeout=10,
                         headers=auth(who, **{"If-Match": etag}), json=body)


def verify(system, case_id: str, who: str) -> requests.Response:
    return requests.post(f"{system.urls['intake']}/intake/v1/cases/{case_id}/verification", headers=auth(who),
                         json={"passed": True, "note": "checked on site"}, timeout=10)


@pytest.mark.parametrize("routes", [("dispatch", "escalation"), ("escalation", "escalation")],
                         ids=["dispatch+escalation", "escalation+escalation"])
@pytest.mark.parametrize("attempt", [0, 1])
def test_after_two_transfers_at_once_the_owner_verifies_and_another_grids_worker_cannot_close_the_case(
        system, grids, routes, attempt):
    assert all(served_by(system, s) == 2 for s in SERVICES), {s: served_by(system, s) for s in SERVICES}
    skip = attempt + (2 if routes[0] == "dispatch" else 0)
    origin, *targets = three_grids_of_three_stations(grids, skip)
    command = token(system, "command", "desk-reader")
    desks = [token(system, "command", "chen"), token(system, "command", "wu")]
    reporter = token(system, "grid_worker", f"reporter-{uuid.uuid4().hex[:6]}", origin)
    lon, lat = grids[origin][1]
    filed = requests.post(f"{system.urls['intake']}/intake/v1/reports", headers=auth(reporter), timeout=10, json={
        "category": "street_light", "description": "lamp out", "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    case_id = filed.json()["id"]
    wait_for_case(system.urls["escalation"], case_id, command, timeout=30)
    _, etag = case_of(system, case_id, command)

    def transfer(i: int) -> requests.Response:
        if routes[i] == "dispatch":
            return requests.post(f"{system.urls['dispatch']}/dispatch/v1/cases/{case_id}/transfer", timeout=10,
                                 headers=auth(desks[i]), json={"to": targets[i], "reason": "belongs there"})
        return act(system, case_id, desks[i], {"action": "transfer", "to": targets[i], "reason": "belongs there"},
                   etag)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(transfer, (0, 1)))

    codes = [a.status_code for a in answers]
    assert sorted(codes) == ([200, 410] if "dispatch" in routes else [200, 412]), [a.text for a in answers]
    owner, loser = (targets[0], targets[1]) if codes[0] == 200 else (targets[1], targets[0])
    owner_station = grids[owner][0]
    # The owner escalation shows: its grid worker fixes the lamp on the spot, so its station checks the fix.
    fixer = token(system, "grid_worker", f"fixer-{uuid.uuid4().hex[:6]}", owner)
    case, etag = case_of(system, case_id, fixer)
    assert case["owner"]["area_id"] == owner
    resolved = act(system, case_id, fixer, {"action": "resolve", "note": "bulb replaced"}, etag)
    assert resolved.status_code == 200, resolved.text
    wait_for(lambda: report_of(system, case_id, command)["status"] == "verifying", 30, 0.1,
             "intake to wait for the verification")

    others = {f"{kind} of {name}": token(system, kind, f"{kind}-{uuid.uuid4().hex[:8]}",
                                         grid if kind == "grid_worker" else grids[grid][0])
              for name, grid in (("the first grid", origin), ("the losing transfer's grid", loser))
              for kind in ("grid_worker", "station")}
    for who, other in others.items():
        refused = verify(system, case_id, other)
        assert refused.status_code in (403, 404), (who, refused.status_code, refused.text)
    time.sleep(1)  # a verification wrongly taken would be on its way to escalation by now
    case, _ = case_of(system, case_id, command)
    assert case["status"] == "verifying" and "verified" not in [s["type"] for s in case["timeline"]], case["status"]
    assert report_of(system, case_id, command)["status"] == "verifying"

    checker_name = f"checker-{uuid.uuid4().hex[:6]}"
    checker = token(system, "station", checker_name, owner_station)
    accepted = verify(system, case_id, checker)
    assert accepted.status_code == 202, accepted.text
    closed = wait_for(lambda: (c := case_of(system, case_id, command)[0])["status"] == "closed" and c, 30, 0.1,
                      "the case closed by the owner's verification")
    verified = [s for s in closed["timeline"] if s["type"] == "verified"]
    assert [s["actor"] for s in verified] == [checker_name], verified
    assert wait_for(lambda: report_of(system, case_id, command)["status"] == "closed", 30, 0.1, "intake closed")
