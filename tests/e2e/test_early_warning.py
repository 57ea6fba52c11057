"""Early warning (预警) end to end over real HTTP: five street-light reports close together raise one item
(the shipped rule: 5 within 200 m in 24 hours), which the station sees and acknowledges, a sixth report
joins, and the station closes it — with the answers each other caller gets, and the audit chain holding
every change. Embedded (SQLite, in-memory bus), and on RabbitMQ + PostgreSQL with two escalation workers
taking reports of one cluster at once (one item, not two)."""
from __future__ import annotations

import math
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from harness.processes import GRIDCASE, ROOT
from shared import audit
from tests.support.system import Production, a_point_in_grid, auth, embedded_system, token, wait_for_case

WARNINGS = "/escalation/v1/warnings"


def nearby(lon: float, lat: float, metres_east: float, metres_north: float) -> dict:
    """A point a few metres from (lon, lat) (degrees WGS84)."""
    return {"lon": lon + metres_east / (111_195 * math.cos(math.radians(lat))), "lat": lat + metres_north / 111_195}


class Scene:
    """A grid of the city, its worker and station, and the people who look at its early warnings."""

    def __init__(self, urls: dict[str, str], make_token):
        self.urls = urls
        admin = make_token("admin")
        self.grid, self.lon, self.lat = a_point_in_grid(urls["dispatch"], admin, 0)
        located = requests.get(f"{urls['dispatch']}/dispatch/v1/locate", params={"lon": self.lon, "lat": self.lat},
                               headers=auth(admin), timeout=10).json()
        far = requests.get(f"{urls['dispatch']}/dispatch/v1/areas", params={"level": "station"},
                           headers=auth(admin), timeout=10).json()["features"]
        other = next(f["properties"]["id"] for f in far if f["properties"]["parent"] != located["subcenter"]["id"])
        self.worker = make_token("grid_worker", area=self.grid, user=f"worker-{self.grid}")
        self.station = make_token("station", area=located["station"]["id"], user="station-duty")
        self.subcenter = make_token("subcenter", area=located["subcenter"]["id"], user="subcenter-duty")
        self.other_station = make_token("station", area=other, user="station-elsewhere")
        self.supervisor = make_token("supervisor", user="supervisor")
        self.command = make_token("command", user="duty-officer")
        self.filed = 0

    def report(self, metres_east: float = 0.0, metres_north: float = 0.0) -> str:
        self.filed += 1
        response = requests.post(f"{self.urls['intake']}/intake/v1/reports", timeout=10, json={
            "category": "street_light", "description": f"lamp {self.filed} out",
            "location": nearby(self.lon, self.lat, metres_east, metres_north)},
            headers=auth(self.worker, **{"Idempotency-Key": f"warn-{self.filed}-{time.monotonic_ns()}"}))
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def get(self, path: str, who: str, **params) -> requests.Response:
        return requests.get(f"{self.urls['escalation']}{path}", headers=auth(who), params=params, timeout=10)

    def act(self, item_id: str, who: str, body: dict) -> requests.Response:
        return requests.post(f"{self.urls['escalation']}{WARNINGS}/{item_id}/actions", headers=auth(who), json=body,
                             timeout=10)

    def items(self, who: str, **params) -> list[dict]:
        response = self.get(WARNINGS, who, **params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def until(self, test, what: str, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.items(self.command)
            if test(found):
                return found
            time.sleep(0.05)
        raise AssertionError(f"{what} within {timeout}s; last seen {found}")


def walk(scene: Scene) -> str:
    """Five reports → one item; who sees and may act on it; acknowledge, a sixth joins, close. Returns its id."""
    first = [scene.report(metres_east=8 * n) for n in range(4)]
    for case_id in first:
        wait_for_case(scene.urls["escalation"], case_id, scene.command, timeout=20)
    assert scene.items(scene.command) == [], "four reports are no cluster"
    fifth = scene.report(metres_north=12)
    [item] = scene.until(lambda found: len(found) == 1, "the fifth report raises an early warning")
    assert item["rule"] == "street_light_cluster" and item["kind"] == "cluster" and item["status"] == "open"
    assert item["category"] == "street_light" and item["area_id"] == scene.grid
    assert sorted(item["reports"]) == sorted([*first, fifth]) and item["count"] == 5 and item["radius_m"] == 200
    assert abs(item["location"]["lon"] - scene.lon) < 0.001 and abs(item["location"]["lat"] - scene.lat) < 0.001
    opened = datetime.fromisoformat(item["opened_at"].replace("Z", "+00:00"))
    assert abs(opened - datetime.now(UTC)) < timedelta(minutes=5)

    # the sub-center hears of it on its bell, once
    bell = scene.get("/escalation/v1/notifications", scene.subcenter).json()["items"]
    assert [n["event_id"] for n in bell if n["event"] == "early_warning"] == [item["id"]]

    # the grid's station, its worker and the supervisor see it; a station of another sub-center does not
    for who in (scene.station, scene.worker, scene.supervisor):
        assert [i["id"] for i in scene.items(who)] == [item["id"]]
    assert scene.items(scene.other_station) == []
    assert scene.get(f"{WARNINGS}/{item['id']}", scene.other_station).status_code == 404
    assert scene.act(item["id"], scene.other_station, {"action": "acknowledge", "note": "x"}).status_code == 404
    for who in (scene.worker, scene.supervisor):
        assert scene.act(item["id"], who, {"action": "acknowledge", "note": "x"}).status_code == 403

    # bad input names the field and changes nothing
    for body, field in (({"action": "acknowledge"}, "note"), ({"action": "acknowledge", "note": "  "}, "note"),
                        ({"action": "escalate", "note": "x"}, "action"), ({"note": "x"}, "action")):
        answer = scene.act(item["id"], scene.station, body)
        assert answer.status_code == 422 and answer.headers["Content-Type"].startswith("application/problem+json")
        assert field in answer.text, answer.text
    assert scene.get(WARNINGS, scene.station, status="bogus").status_code == 422
    assert scene.get(f"{WARNINGS}/{item['id']}", scene.station).json()["status"] == "open"

    answer = scene.act(item["id"], scene.station, {"action": "acknowledge", "note": "a feeder cable: power company"})
    assert answer.status_code == 200 and answer.json()["status"] == "acknowledged", answer.text
    again = scene.act(item["id"], scene.station, {"action": "acknowledge", "note": "again"})
    assert again.status_code == 409 and again.headers["Content-Type"].startswith("application/problem+json")

    sixth = scene.report(metres_east=-15)
    [item] = scene.until(lambda found: found and found[0]["count"] == 6, "a sixth report joins the item")
    assert item["reports"][-1] == sixth and item["status"] == "acknowledged"
    bell = scene.get("/escalation/v1/notifications", scene.subcenter).json()["items"]
    assert len([n for n in bell if n["event"] == "early_warning"]) == 1, "a report joining is no new warning"

    closed = scene.act(item["id"], scene.station, {"action": "close", "note": "cable replaced, lamps on"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert [h["action"] for h in closed.json()["history"]] == ["opened", "acknowledged", "closed"]
    assert scene.act(item["id"], scene.station, {"action": "close", "note": "again"}).status_code == 409
    assert scene.items(scene.command) == []
    assert [i["id"] for i in scene.items(scene.command, status="closed")] == [item["id"]]

    # the desk's hotspots count the grid's reports; the worker reads no statistics
    today = datetime.now(UTC).date()
    hot = scene.get("/escalation/v1/stats/hotspots", scene.station, **{"from": str(today - timedelta(1)),
                                                                         "to": str(today + timedelta(2))})
    assert hot.status_code == 200, hot.text
    assert {"area_id": scene.grid, "category": "street_light", "reports": 6} in hot.json()["rows"]
    bad = scene.get("/escalation/v1/stats/hotspots", scene.station, **{"from": str(today), "to": str(today)})
    assert bad.status_code == 422 and "to" in bad.text
    period = {"from": str(today), "to": str(today + timedelta(1))}
    assert scene.get("/escalation/v1/stats/hotspots", scene.worker, **period).status_code == 403
    return item["id"]


def check_audit(service, item_id: str) -> None:
    """The audit chain verifies and holds the item's changes, with no case (outside every case's
    timeline), in order."""
    with service.uow() as uow:
        rows = list(uow.store.audit_rows())
    assert audit.verify(rows) is None
    mine = [r for r in rows if r.case_id is None and r.detail.get("item") == item_id]
    assert [r.action for r in mine] == ["early_warning.opened", "early_warning.acknowledged", "early_warning.joined",
                                        "early_warning.closed"]
    assert mine[1].actor == "station-duty" and mine[1].detail["note"] == "a feeder cable: power company"


def test_five_street_light_reports_raise_an_early_warning_that_staff_acknowledge_and_close_embedded(tmp_path):
    from services.escalation import bootstrap
    from shared.config import from_env

    with embedded_system(tmp_path) as base:
        item_id = walk(Scene({s: base for s in ("intake", "dispatch", "escalation")},
                             lambda role, **claims: token(tmp_path, role, **claims)))
    check_audit(bootstrap.build(from_env(tmp_path), web=False), item_id)
    verified = subprocess.run([*GRIDCASE, "audit", "verify", "--data-dir", str(tmp_path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stdout + verified.stderr


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_early_warning_on_rabbitmq_and_postgres_with_two_escalation_workers(tmp_path, broker_url, postgres_urls):
    from services.escalation import bootstrap
    from shared.config import Settings

    system = Production(tmp_path, broker_url, postgres_urls)
    try:
        system.start()
        system.processes.gridcase("worker-escalation-2", ["worker", "escalation", "--data-dir", str(tmp_path)],
                                  system.env)
        scene = Scene(system.urls, system.token)
        item_id = walk(scene)
        # eight more reports of one new cluster at once, across two escalation workers: one item
        scene.lon, scene.lat = nearby(scene.lon, scene.lat, 1500, 0).values()
        with ThreadPoolExecutor(8) as pool:
            filed = list(pool.map(lambda n: scene.report(metres_east=5 * n), range(8)))
        def clusters(items):
            return [i for i in items if i["rule"] == "street_light_cluster"]
        found = clusters(scene.until(lambda items: sum(i["count"] for i in clusters(items)) == 8,
                                     "the burst gathers into one item"))
        assert len(found) == 1 and sorted(found[0]["reports"]) == sorted(filed)
    finally:
        system.processes.stop_all()
    settings = Settings(database_urls={"escalation": postgres_urls["escalation"]}, secret="x")
    check_audit(bootstrap.build(settings, web=False), item_id)
