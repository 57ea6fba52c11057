"""The four-level closed loop end to end, over real HTTP, with a compressed clock and a short policy:
a real case climbs all four levels on time, comes back down by hand, is resolved, fails verification,
is reworked, passes verification and closes — and its timeline and the audit chain agree on every
time. Embedded (SQLite, in-memory bus) and on RabbitMQ + PostgreSQL (separate processes)."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests

from shared import audit
from shared.clock import isoformat, parse_time
from tests.support.system import Production, a_point_in_grid, auth, embedded_system, token, wait_for_case

SCALE = 3600.0  # an hour of service time per real second
POLICY = """
[levels]
1 = 6.0
2 = 1.0
3 = 1.0
4 = 1.0

[[categories]]
code = "street_light"
zh = "路灯损坏"
en = "Broken street light"

[[categories]]
code = "other"
zh = "其他"
en = "Other"
"""


def clock_env(tmp_path) -> dict:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return {"GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_POLICY_FILE": str(policy),
            "GRIDCASE_CLOCK_ANCHOR": isoformat(datetime.now(UTC))}


class Loop:
    """One case through the loop, by the people who would act on it."""

    def __init__(self, urls: dict[str, str], make_token):
        self.urls = urls
        self.token = make_token

    def get(self, service: str, path: str, who: str, **params) -> requests.Response:
        return requests.get(f"{self.urls[service]}{path}", headers=auth(who), params=params, timeout=10)

    def case(self, case_id: str, who: str) -> tuple[dict, str]:
        response = self.get("escalation", f"/escalation/v1/cases/{case_id}", who)
        assert response.status_code == 200, response.text
        return response.json(), response.headers["ETag"]

    def act(self, case_id: str, who: str, action: str, **arguments) -> dict:
        _, tag = self.case(case_id, who)
        response = requests.post(f"{self.urls['escalation']}/escalation/v1/cases/{case_id}/actions",
                                 headers=auth(who, **{"If-Match": tag}), json={"action": action, **arguments},
                                 timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def until(self, case_id: str, who: str, test, what: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            case, _ = self.case(case_id, who)
            if test(case):
                return case
            time.sleep(0.05)
        raise AssertionError(f"case {case_id}: {what} within {timeout}s; last seen {case}")

    def report_until(self, case_id: str, who: str, status: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            report = self.get("intake", f"/intake/v1/reports/{case_id}", who).json()
            if report.get("status") == status:
                return report
            time.sleep(0.05)
        raise AssertionError(f"report {case_id} never showed {status}: {report}")

    def verify(self, case_id: str, who: str, passed: bool, note: str) -> None:
        response = requests.post(f"{self.urls['intake']}/intake/v1/cases/{case_id}/verification",
                                 headers=auth(who), json={"passed": passed, "note": note}, timeout=10)
        assert response.status_code == 202, response.text

    def walk(self) -> tuple[str, list[dict]]:
        admin = self.token("admin")
        grid, lon, lat = a_point_in_grid(self.urls["dispatch"], admin)
        worker = self.token("grid_worker", area=grid, user=f"worker-{grid}")
        command = self.token("command", user="duty-officer")
        filed = requests.post(f"{self.urls['intake']}/intake/v1/reports", headers=auth(worker, **{
            "Idempotency-Key": "loop-1"}), timeout=10, json={
            "category": "street_light", "description": "lamp out at gate 3", "location": {"lon": lon, "lat": lat}})
        assert filed.status_code == 201, filed.text
        case_id = filed.json()["id"]
        case, _ = wait_for_case(self.urls["escalation"], case_id, worker, timeout=10)
        assert case["level"] == 1 and case["report"]["description"] == "lamp out at gate 3"
        # every token made now: a token is a process to start, and the clock runs an hour a second
        station = self.token("station", area=case["areas"]["station"]["id"], user="station-staff")

        # climbs all four levels on time: 6 h, 1 h, 1 h of service time, then overdue at headquarters
        case = self.until(case_id, command, lambda c: c["timeline"][-1]["type"] == "overdue",
                          "climbs to headquarters and is flagged overdue")
        fired = [s for s in case["timeline"] if s["scheduled_at"]]
        assert [(s["type"], s["level"]) for s in fired] == [("escalated", 2), ("escalated", 3), ("escalated", 4),
                                                               ("overdue", 4)]
        for step in fired:
            late = (parse_time(step["at"]) - parse_time(step["scheduled_at"])).total_seconds() / SCALE
            assert 0 <= late <= 2.0, f"{step['type']} fired {late:.2f} real seconds after its deadline"
        assert case["deadline"] is not None, "an overdue case keeps its deadline"

        # headquarters hands it back down to the grid worker (回退), who resolves it
        self.act(case_id, command, "return", level=1, reason="the grid worker can fix this")
        assert self.case(case_id, station)[0]["level"] == 1
        self.act(case_id, worker, "acknowledge")
        resolved = self.act(case_id, worker, "resolve", note="replaced the bulb")
        assert resolved["status"] == "verifying"

        # the grid worker fixed it himself: the station checks on site (never the one who made the fix); it
        # fails: rework at the level that resolved it
        self.report_until(case_id, worker, "verifying")
        self.verify(case_id, station, False, "still dark at night")
        case = self.until(case_id, worker, lambda c: c["status"] == "rework", "goes to rework")
        assert case["level"] == 1 and case["reworks"] == 1
        self.act(case_id, worker, "resolve", note="replaced the lamp's fuse too")

        # the check passes: closed
        self.report_until(case_id, worker, "verifying")
        self.verify(case_id, station, True, "")
        case = self.until(case_id, worker, lambda c: c["status"] == "closed", "closes")
        assert self.report_until(case_id, worker, "closed")["level"] == 1
        types = [s["type"] for s in case["timeline"]]
        assert types == ["opened", "escalated", "escalated", "escalated", "overdue", "returned", "acknowledged",
                         "resolved", "verified", "reworked", "resolved", "verified", "closed"]
        return case_id, case["timeline"]


def check_audit(service, case_id: str, timeline: list[dict]) -> None:
    """The audit chain verifies and holds this case's steps at exactly the timeline's times."""
    with service.uow() as uow:
        rows = list(uow.store.audit_rows())
    assert audit.verify(rows) is None
    mine = [(isoformat(r.at), r.action, r.detail["level"]) for r in rows if r.case_id == case_id]
    assert mine == [(s["at"], s["type"], s["level"]) for s in timeline]


def test_the_closed_loop_end_to_end_embedded(tmp_path):
    from services.escalation import bootstrap
    from shared.config import from_env

    env = clock_env(tmp_path)
    with embedded_system(tmp_path, env=env) as base:
        loop = Loop({s: base for s in ("intake", "dispatch", "escalation")},
                    lambda role, **claims: token(tmp_path, role, **claims))
        case_id, timeline = loop.walk()
    check_audit(bootstrap.build(from_env(tmp_path, env=env), web=False), case_id, timeline)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_the_closed_loop_end_to_end_on_rabbitmq_and_postgres(tmp_path, broker_url, postgres_urls):
    from services.escalation import bootstrap
    from shared.config import Settings

    env = clock_env(tmp_path)
    system = Production(tmp_path, broker_url, postgres_urls, env=env)
    try:
        system.start()
        case_id, timeline = Loop(system.urls, system.token).walk()
    finally:
        system.processes.stop_all()
    settings = Settings(database_urls={"escalation": postgres_urls["escalation"]}, secret="x")
    check_audit(bootstrap.build(settings, web=False), case_id, timeline)
