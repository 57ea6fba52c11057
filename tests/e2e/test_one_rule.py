"""One decision, one place, over real HTTP (`gridcase up`): every change of owner is escalation's rule,
dispatch's old transfer route changes nothing, and two changes at the same moment never split the
services (the loser is told, 412)."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from services.dispatch.citygen import generate_city
from tests.support.system import GRIDCASE, ROOT, auth, embedded_system, token, wait_for_case


@pytest.fixture(scope="module")
def city():
    return generate_city(grids=40, stations=4, subcenters=2, seed=19)


@pytest.fixture(scope="module")
def system(tmp_path_factory, city):
    data = tmp_path_factory.mktemp("one-rule")
    city_file = data / "city.json"
    city_file.write_text(json.dumps(city))
    with embedded_system(data, "--city", str(city_file)) as base:
        yield base, data


def units(city) -> dict:
    """grid id → (station id, sub-center id)."""
    parents = {f["properties"]["id"]: f["properties"]["parent"] for level in ("station", "grid")
               for f in city[level]["features"]}
    return {f["properties"]["id"]: (parents[f["properties"]["id"]], parents[parents[f["properties"]["id"]]])
            for f in city["grid"]["features"]}


def centre(city, grid_id) -> tuple[float, float]:
    from shapely.geometry import shape

    feature = next(f for f in city["grid"]["features"] if f["properties"]["id"] == grid_id)
    point = shape(feature["geometry"]).representative_point()
    return point.x, point.y


def file_case(base, city, grid_id, who) -> str:
    lon, lat = centre(city, grid_id)
    filed = requests.post(f"{base}/intake/v1/reports", headers=auth(who), timeout=10, json={
        "category": "street_light", "description": "lamp out", "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    wait_for_case(base, filed.json()["id"], who)
    return filed.json()["id"]


def read(base, case_id, who) -> tuple[dict, str]:
    response = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(who), timeout=10)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["ETag"]


def act(base, case_id, who, body, etag) -> requests.Response:
    return requests.post(f"{base}/escalation/v1/cases/{case_id}/actions", headers=auth(who, **{"If-Match": etag}),
                         json=body, timeout=10)


def settled(read_state, timeout: float = 10.0):
    """Poll ``read_state`` until two reads in a row agree; returns the value."""
    deadline = time.monotonic() + timeout
    last = read_state()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = read_state()
        if now == last:
            return now
        last = now
    return last


def test_a_station_cannot_pull_a_case_escalated_to_its_subcenter_back_to_level_1_by_either_route(system, city):
    base, data = system
    grid = sorted(units(city))[0]
    station, _ = units(city)[grid]
    worker = token(data, "grid_worker", area=grid, user="wang")
    station_desk = token(data, "station", area=station)
    case_id = file_case(base, city, grid, worker)
    for who in (worker, station_desk):
        _, etag = read(base, case_id, who)
        assert act(base, case_id, who, {"action": "escalate", "reason": "needs the level above"}, etag).status_code \
            == 200
    before, etag = read(base, case_id, station_desk)
    assert before["level"] == 3

    through_dispatch = requests.post(f"{base}/dispatch/v1/cases/{case_id}/transfer", headers=auth(station_desk),
                                     json={"to": grid, "reason": "mine after all"}, timeout=10)
    through_escalation = act(base, case_id, station_desk, {"action": "transfer", "to": grid,
                                                           "reason": "mine after all"}, etag)

    assert through_dispatch.status_code == 410
    assert through_dispatch.headers["Content-Type"].startswith("application/problem+json")
    assert f"/escalation/v1/cases/{case_id}/actions" in through_dispatch.headers["Link"]
    assert through_escalation.status_code == 403
    time.sleep(1.0)  # anything published would have reached the other services by now
    after, _ = read(base, case_id, token(data, "admin"))
    assert (after["level"], after["deadline"], after["timeline"]) == (3, before["deadline"], before["timeline"])
    report = requests.get(f"{base}/intake/v1/reports/{case_id}", headers=auth(worker), timeout=10).json()
    assert report["level"] == 3


def test_a_grid_worker_cannot_move_its_own_case_into_another_subcenter(system, city):
    base, data = system
    grids = units(city)
    grid = sorted(grids)[1]
    elsewhere = next(g for g, (_, subcenter) in sorted(grids.items()) if subcenter != grids[grid][1])
    worker = token(data, "grid_worker", area=grid, user="li")
    case_id = file_case(base, city, grid, worker)
    _, etag = read(base, case_id, worker)

    moved = act(base, case_id, worker, {"action": "transfer", "to": elsewhere, "reason": "not my grid"}, etag)

    assert moved.status_code == 403 and "grid worker" in moved.json()["detail"]
    case, _ = read(base, case_id, worker)
    assert case["owner"]["area_id"] == grid and case["areas"]["subcenter"]["id"] == grids[grid][1]


def owners_everywhere(base, data, case_id, who) -> tuple[str, str, str]:
    """The case's owner as escalation, intake and dispatch (its database) each hold it."""
    case, _ = read(base, case_id, who)
    report = requests.get(f"{base}/intake/v1/reports/{case_id}", headers=auth(who), timeout=10).json()
    with sqlite3.connect(data / "dispatch.db") as db:
        [dispatch_grid] = db.execute("SELECT grid_id FROM dispatches WHERE case_id = ?", (case_id,)).fetchone()
    return case["owner"]["area_id"], report["owner_area_id"], dispatch_grid


@pytest.mark.parametrize("routes", [("dispatch", "escalation"), ("escalation", "escalation")])
def test_two_transfers_at_the_same_moment_one_wins_the_other_is_told_and_every_service_agrees(system, city, routes):
    base, data = system
    grids = sorted(units(city))
    origin, targets = grids[2], (grids[10], grids[30])
    worker = token(data, "grid_worker", area=origin, user="zhao")
    desks = [token(data, "command", user="chen"), token(data, "command", user="wu")]
    for _ in range(3):
        case_id = file_case(base, city, origin, worker)
        _, etag = read(base, case_id, desks[0])

        def transfer(i, case_id=case_id, etag=etag):
            if routes[i] == "dispatch":
                return requests.post(f"{base}/dispatch/v1/cases/{case_id}/transfer", headers=auth(desks[i]),
                                     json={"to": targets[i], "reason": "belongs there"}, timeout=10)
            return act(base, case_id, desks[i], {"action": "transfer", "to": targets[i], "reason": "belongs there"},
                       etag)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(transfer, (0, 1)))

        codes = [a.status_code for a in answers]
        assert sorted(codes) == ([200, 410] if "dispatch" in routes else [200, 412]), [a.text for a in answers]
        winner = targets[codes.index(200)]
        assert settled(lambda case_id=case_id: owners_everywhere(base, data, case_id, desks[0])) == (winner,) * 3


def test_concurrent_verifications_the_first_is_sent_and_every_other_answered_409(system, city):
    base, data = system
    grid = sorted(units(city))[5]
    worker = token(data, "grid_worker", area=grid, user="qian")
    station = token(data, "station", area=units(city)[grid][0])  # a grid worker's own fix: the station checks
    case_id = file_case(base, city, grid, worker)
    _, etag = read(base, case_id, worker)
    assert act(base, case_id, worker, {"action": "resolve", "note": "bulb replaced"}, etag).status_code == 200
    report = lambda: requests.get(f"{base}/intake/v1/reports/{case_id}", headers=auth(worker), timeout=10).json()  # noqa: E731
    assert settled(lambda: report()["status"]) == "verifying"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda passed: requests.post(
            f"{base}/intake/v1/cases/{case_id}/verification", headers=auth(station), timeout=10,
            json={"passed": passed, "note": "checked on site"}), [True, False] * 4))

    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 7, [a.text for a in answers]
    assert all("already" in a.json()["detail"] or "not awaiting" in a.json()["detail"]
               for a in answers if a.status_code == 409)
    passed = next(a.json()["passed"] for a in answers if a.status_code == 202)
    case = settled(lambda: read(base, case_id, worker)[0])
    assert [s["type"] for s in case["timeline"]].count("verified") == 1
    assert case["status"] == ("closed" if passed else "rework")


@pytest.mark.parametrize("subject", ["command", "station@{station}", "{station}", "{grid}"])
def test_gridcase_token_refuses_a_person_named_after_a_role_a_desk_or_a_unit(system, city, subject):
    """``gridcase token --role grid_worker --user command`` made a worker who read the command desk's reports."""
    _, data = system
    grid = sorted(units(city))[7]
    station, _ = units(city)[grid]
    user = subject.format(station=station, grid=grid)

    refused = subprocess.run([*GRIDCASE, "token", "--role", "grid_worker", "--area", grid, "--user", user,
                              "--data-dir", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert refused.returncode != 0 and refused.stdout == "" and "--user" in refused.stderr
    assert token(data, "grid_worker", area=grid, user="wang-7").count(".") == 2, "a name of their own is fine"


def test_an_owner_asks_for_a_suspension_and_only_the_level_above_stops_the_clock(system, city):
    """Suspension (挂账) needed no approval: an owner stopped their own clock."""
    base, data = system
    grid = sorted(units(city))[9]
    station, _ = units(city)[grid]
    worker = token(data, "grid_worker", area=grid, user="sun")
    station_desk = token(data, "station", area=station)
    case_id = file_case(base, city, grid, worker)
    before, etag = read(base, case_id, worker)

    asked = act(base, case_id, worker, {"action": "suspend", "reason": "waiting for the budget"}, etag)

    assert asked.status_code == 200, asked.text
    case = asked.json()
    assert (case["status"], case["deadline"]) == ("open", before["deadline"])
    assert case["timeline"][-1]["type"] == "suspension_requested" and case["pending_suspension"]["reason"]
    assert "approve_suspension" not in case["actions"]
    by_self = act(base, case_id, worker, {"action": "approve_suspension"}, asked.headers["ETag"])
    assert by_self.status_code == 403
    for_station, etag = read(base, case_id, station_desk)
    assert {"approve_suspension", "refuse_suspension"} <= set(for_station["actions"])
    approved = act(base, case_id, station_desk, {"action": "approve_suspension", "note": "agreed"}, etag)
    assert approved.status_code == 200 and approved.json()["status"] == "suspended"
    assert approved.json()["deadline"] is None and approved.json()["timeline"][-1]["actor"] == "station@" + station


FEED = "/escalation/v1/cases/events"


def feed(base, who, last_event_id=None, until=lambda seen: False, seconds=10.0) -> list[dict]:
    """The live feed's events for ``who`` ({id, event, data}) until ``until(events)`` or ``seconds``."""
    headers = auth(who, Accept="text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {}))
    seen, current, started = [], {}, time.monotonic()
    with requests.get(f"{base}{FEED}", headers=headers, stream=True, timeout=(5, seconds)) as response:
        assert response.status_code == 200, response.text
        try:
            for line in response.iter_lines(chunk_size=None, decode_unicode=True):
                if line == "" and current:
                    event, current = current, {}
                    if "event" in event:
                        seen.append(event)
                        if until(seen) or time.monotonic() - started > seconds:
                            break
                elif line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    current[name] = json.loads(value) if name == "data" else value
        except requests.exceptions.ConnectionError:  # the feed was quiet until the read timed out
            pass
    return seen


def test_a_board_is_told_at_once_when_a_case_is_transferred_out_of_its_area(system, city):
    """A transferred-away case stayed on the old station's board for 30 s and then read "no such case"."""
    base, data = system
    grids = units(city)
    grid = sorted(grids)[12]
    elsewhere = next(g for g, (station, _) in sorted(grids.items()) if station != grids[grid][0])
    old_station = token(data, "station", area=grids[grid][0])
    new_station = token(data, "station", area=grids[elsewhere][0])
    case_id = file_case(base, city, grid, token(data, "grid_worker", area=grid, user="feng"))
    [hello] = feed(base, old_station, until=lambda seen: True)
    since = hello["id"]
    command = token(data, "command", user="chen")
    _, etag = read(base, case_id, command)
    assert act(base, case_id, command, {"action": "transfer", "to": elsewhere, "reason": "their street"},
               etag).status_code == 200

    def removal(seen):
        return any(e["event"] == "removed" for e in seen)

    old = feed(base, old_station, last_event_id=since, until=removal)
    new = feed(base, new_station, last_event_id=since,
               until=lambda seen: any(e["event"] == "case" and e["data"]["step"]["type"] == "transferred"
                                      for e in seen))

    [removed] = [e for e in old if e["event"] == "removed"]
    assert removed["data"] == {"case_id": case_id, "type": "transferred"}
    assert not [e for e in old if e["event"] == "case" and e["data"]["case"]["id"] == case_id
                and e["data"]["step"]["type"] == "transferred"], "the old station no longer sees the case itself"
    [moved] = [e for e in new if e["event"] == "case" and e["data"]["step"]["type"] == "transferred"]
    assert moved["data"]["case"]["id"] == case_id and moved["id"] == removed["id"]
    assert requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(old_station), timeout=10).status_code \
        == 404


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_reroute_dispatch_computed_before_a_staff_transfer_never_overrides_it(production):
    """An area version activated while dispatch had not yet taken a staff transfer: dispatch proposed
    owners from the case as it was before, escalation applied them, and the case silently left the unit
    staff had chosen. Over the production message path: dispatch's worker is stopped so that the transfer
    waits in its queue while the new version is imported, then started again."""
    import sqlalchemy as sa

    from harness.processes import wait_for
    from shared.db import make_engine
    from tests.support.system import a_point_in_grid

    urls, data, env = production.urls, production.data, production.env
    admin = production.token("admin")
    grid, lon, lat = a_point_in_grid(urls["dispatch"], admin, index=3)
    target, _, _ = a_point_in_grid(urls["dispatch"], admin, index=40)
    worker = production.token("grid_worker", area=grid, user="zhou")
    filed = requests.post(f"{urls['intake']}/intake/v1/reports", headers=auth(worker), timeout=10, json={
        "category": "street_light", "description": "lamp out", "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    case_id = filed.json()["id"]
    wait_for_case(urls["escalation"], case_id, worker, timeout=20)
    dispatch_db = make_engine(env["GRIDCASE_DISPATCH_DATABASE_URL"])

    def dispatch_grid() -> str | None:
        with dispatch_db.connect() as db:
            return db.execute(sa.text("SELECT grid_id FROM dispatches WHERE case_id = :id"), {"id": case_id}).scalar()

    assert dispatch_grid() == grid
    production.processes.stop("worker-dispatch")  # the transfer below waits in dispatch's queue

    command = production.token("command", user="chen")
    _, etag = read(urls["escalation"], case_id, command)
    moved = act(urls["escalation"], case_id, command, {"action": "transfer", "to": target, "reason": "their street"},
                etag)
    assert moved.status_code == 200, moved.text
    transferred_at = int(moved.headers["ETag"].strip('"'))
    city, version_2 = data / "city", data / "city-2"
    version_2.mkdir()
    for level in ("hq", "subcenter", "station", "grid"):
        collection = json.loads((city / f"{level}.geojson").read_text())
        for feature in collection["features"]:
            if feature["properties"]["id"] == grid:
                feature["properties"]["id"] = f"{grid}-2"  # the case's point now lies in another grid
        (version_2 / f"{level}.geojson").write_text(json.dumps(collection))
    args = ["areas", "import", "--data-dir", str(data)]
    for level in ("hq", "subcenter", "station", "grid"):
        args += ["--level", level, str(version_2 / f"{level}.geojson")]
    production.processes.run("import-2", [*GRIDCASE, *args], env, timeout=120)
    assert dispatch_grid() == f"{grid}-2", "dispatch proposed the new version's owners from the old ones"
    production.start_worker("dispatch")

    def revision() -> int:
        return int(read(urls["escalation"], case_id, command)[1].strip('"'))

    wait_for(lambda: revision() > transferred_at, timeout=60, message="escalation to decide the proposal")

    def everywhere() -> tuple:
        case, _ = read(urls["escalation"], case_id, command)
        report = requests.get(f"{urls['intake']}/intake/v1/reports/{case_id}", headers=auth(command), timeout=10)
        return case["owner"]["area_id"], report.json()["owner_area_id"], dispatch_grid()

    assert settled(everywhere) == (target,) * 3
    case, _ = read(urls["escalation"], case_id, command)
    assert "rerouted" not in [step["type"] for step in case["timeline"]]
    dispatch_db.dispose()


@pytest.mark.parametrize("role, level", [("grid_worker", 0), ("station", 1)])
def test_a_token_not_from_gridcase_token_whose_sub_is_an_areas_id_is_refused_when_read(system, city, role, level):
    """Only ``gridcase token`` refused a subject that is a unit's id: a token signed elsewhere (an identity
    provider's, or one made with the secret) with ``sub`` an area's id was read as a person of that name."""
    import jwt

    base, data = system
    grid = sorted(units(city))[11]
    area = (grid, units(city)[grid][0])[level]
    secret = (data / "secret").read_text().strip()
    issued = int(time.time())

    def signed(subject):
        return jwt.encode({"sub": subject, "role": role, "area": area, "iat": issued, "exp": issued + 600}, secret,
                          algorithm="HS256")

    for path in ("/escalation/v1/cases", "/dispatch/v1/departments"):
        refused = requests.get(f"{base}{path}", headers=auth(signed(area)), timeout=10)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert f"sub claim {area!r}" in refused.json()["detail"]
        assert requests.get(f"{base}{path}", headers=auth(signed("wang-11")), timeout=10).status_code == 200
