"""Acceptance (立案), the endings other than a fix, finding cases and named handlers, end to end over real
HTTP: embedded (SQLite, in-memory bus) and on RabbitMQ + PostgreSQL (separate processes).

A citizen's Open311 report waits for acceptance and is refused with a reason its Open311 client reads;
another is accepted as urgent and gets the urgent rule's deadline; a grid worker's report and an Open311
one merged into it follow it to closure (on the phone's API and in Open311); the grid worker fixes it on
the spot with an after-photo and the station verifies it; the cases are found by number and text; a
station names a handler who finds the case under "mine". Every refusal of the issue's bad-input list is
answered with its status and field, and changes nothing."""
from __future__ import annotations

import io
import os
import subprocess
import time
from datetime import timedelta

import pytest
import requests
from PIL import Image

from harness.processes import GRIDCASE
from shared import audit
from shared.clock import parse_time
from tests.support.system import ROOT, Production, a_point_in_grid, auth, embedded_system, token, wait_for_case


def policy_text() -> str:
    """The shipped policy (the demo city's departments name its categories) in elapsed hours, so that the
    deadlines read plainly: 2 hours to accept, 4 hours at level 1 (urgent: 30 minutes and 1 hour)."""
    from shared.policy import DEFAULT_FILE

    text = DEFAULT_FILE.read_text(encoding="utf-8")
    for old, new in (('acceptance = "2 working_hours"', 'acceptance = "2 hours"'),
                     ('verification = "1 working_days"', 'verification = "24 hours"'),
                     ('1 = "4 working_hours"', '1 = "4 hours"'), ('2 = "8 working_hours"', '2 = "8 hours"'),
                     ('3 = "3 working_days"', '3 = "24 hours"'), ('4 = "5 working_days"', '4 = "48 hours"')):
        assert old in text, old
        text = text.replace(old, new)
    return text


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 160, 40)).save(out, "JPEG")
    return out.getvalue()


class City:
    """The people of one grid and its station, and what they do over HTTP."""

    def __init__(self, urls: dict[str, str], make_token, api_key: str):
        self.urls, self.key = urls, api_key
        admin = make_token("admin")
        self.admin = admin
        self.grid, self.lon, self.lat = a_point_in_grid(urls["dispatch"], admin, index=3)
        located = requests.get(f"{urls['dispatch']}/dispatch/v1/locate", params={"lon": self.lon, "lat": self.lat},
                               headers=auth(admin), timeout=10).json()
        self.station_id = located["station"]["id"]
        self.worker = make_token("grid_worker", area=self.grid, user="wang")
        self.station = make_token("station", area=self.station_id, user="zhou")
        self.colleague = make_token("station", area=self.station_id, user="li")
        self.command = make_token("command", user="chen")
        self.far_grid, self.far_lon, self.far_lat = a_point_in_grid(urls["dispatch"], admin, index=150)
        far = requests.get(f"{urls['dispatch']}/dispatch/v1/locate", params={"lon": self.far_lon, "lat": self.far_lat},
                           headers=auth(admin), timeout=10).json()
        assert far["station"]["id"] != self.station_id
        self.far_station = make_token("station", area=far["station"]["id"], user="far")
        self.far_worker = make_token("grid_worker", area=self.far_grid, user="ma")

    # -- HTTP ----------------------------------------------------------------------------------------------

    def case(self, case_id: str, who: str) -> tuple[dict, str]:
        response = requests.get(f"{self.urls['escalation']}/escalation/v1/cases/{case_id}", headers=auth(who),
                                timeout=10)
        assert response.status_code == 200, response.text
        return response.json(), response.headers["ETag"]

    def act(self, case_id: str, who: str, action: str, expect: int = 200, **arguments) -> dict:
        _, tag = self.case(case_id, who)
        response = requests.post(f"{self.urls['escalation']}/escalation/v1/cases/{case_id}/actions",
                                 headers=auth(who, **{"If-Match": tag}), json={"action": action, **arguments},
                                 timeout=10)
        assert response.status_code == expect, response.text
        return response.json()

    def until(self, fetch, test, what: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = fetch()
            if test(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"{what} within {timeout}s; last seen {seen}")

    def open311(self, description: str) -> str:
        response = requests.post(f"{self.urls['intake']}/open311/v2/requests.json", timeout=10, data={
            "api_key": self.key, "service_code": "street_light", "lat": self.lat, "long": self.lon,
            "description": description})
        assert response.status_code == 201, response.text
        return response.json()[0]["service_request_id"]

    def public(self, request_id: str) -> dict:
        response = requests.get(f"{self.urls['intake']}/open311/v2/requests/{request_id}.json", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()[0]

    def report(self, description: str, key: str) -> dict:
        response = requests.post(f"{self.urls['intake']}/intake/v1/reports", headers=auth(self.worker, **{
            "Idempotency-Key": key}), timeout=10, json={
            "category": "street_light", "description": description, "location": {"lon": self.lon, "lat": self.lat}})
        assert response.status_code == 201, response.text
        return response.json()

    def mine(self, report_id: str) -> dict:
        return requests.get(f"{self.urls['intake']}/intake/v1/reports/{report_id}", headers=auth(self.worker),
                            timeout=10).json()

    def listing(self, who: str, **params) -> requests.Response:
        return requests.get(f"{self.urls['escalation']}/escalation/v1/cases", headers=auth(who), params=params,
                            timeout=10)

    # -- the walk ------------------------------------------------------------------------------------------

    def walk(self) -> list[str]:
        refused, accepted = self.open311("lamp out somewhere"), self.open311("lamp out at the bridge, dark at night")
        for request_id in (refused, accepted):
            case, _ = wait_for_case(self.urls["escalation"], request_id, self.station, timeout=20)
            assert case["status"] == "pending_acceptance" and case["level"] == 1
            assert parse_time(case["deadline"]) - parse_time(case["opened_at"]) == timedelta(hours=2)
            assert set(case["actions"]) >= {"accept", "refuse", "merge", "set_severity"}
        queue = self.listing(self.station, status="pending_acceptance").json()["items"]
        assert {refused, accepted} <= {c["id"] for c in queue}, "the acceptance queue"
        assert self.case(refused, self.worker)[0]["actions"] == [], "the grid worker waits for acceptance"

        # 不予立案 with a reason the Open311 client reads
        assert self.act(refused, self.station, "refuse", 422, reason="lazy")["errors"][0]["field"] == "reason"
        self.act(refused, self.station, "refuse", reason="insufficient_information", note="no house number given")
        public = self.until(lambda: self.public(refused), lambda r: r["status"] == "closed",
                            "the refused request reads closed in Open311")
        assert "too little information" in public["status_notes"] and "no house number" in public["status_notes"]
        self.act(refused, self.station, "refuse", 409, reason="duplicate")  # refusing a refused (ended) case

        # 立案 as urgent: the urgent rule's level-1 limit (1 hour) from acceptance
        assert self.act(accepted, self.station, "set_severity", 422,
                        severity="catastrophic")["errors"][0]["field"] == "severity"
        self.act(accepted, self.station, "set_severity", severity="urgent")
        case = self.act(accepted, self.station, "accept", note="a city lamp")
        assert (case["status"], case["severity"], case["level"]) == ("open", "urgent", 1)
        at = next(s for s in case["timeline"] if s["type"] == "accepted")["at"]
        assert parse_time(case["deadline"]) - parse_time(at) == timedelta(hours=1)
        self.act(accepted, self.station, "accept", 409)
        assert self.until(lambda: self.public(accepted), lambda r: "open, level 1" in r["status_notes"],
                          "Open311 follows the acceptance")["status"] == "open"

        # the grid worker's own report of the same lamp, and another citizen's: merged into the accepted case
        unknown = requests.post(f"{self.urls['intake']}/intake/v1/reports", timeout=10, headers=auth(
            self.worker, **{"Idempotency-Key": "accept-bad"}), json={"category": "street_light", "description": "x",
                                                                      "severity": "apocalyptic",
                                                                      "location": {"lon": self.lon, "lat": self.lat}})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "severity", unknown.text
        own = self.report("the bridge lamp is out", "accept-own")
        wait_for_case(self.urls["escalation"], own["id"], self.worker, timeout=20)
        third = self.open311("bridge light broken")
        wait_for_case(self.urls["escalation"], third, self.station, timeout=20)
        self.act(own["id"], self.station, "merge", 409, into=own["id"])
        far_report = {"category": "street_light", "description": "elsewhere",
                      "location": {"lon": self.far_lon, "lat": self.far_lat}}
        response = requests.post(f"{self.urls['intake']}/intake/v1/reports", json=far_report, timeout=10,
                                 headers=auth(self.far_worker, **{"Idempotency-Key": "accept-far"}))
        elsewhere = response.json()["id"]
        wait_for_case(self.urls["escalation"], elsewhere, self.far_worker, timeout=20)
        refused_merge = self.act(own["id"], self.station, "merge", 404, into=elsewhere)  # not in the station's area
        assert refused_merge["errors"][0]["field"] == "into"
        merged = self.act(own["id"], self.station, "merge", into=accepted, note="same lamp")
        assert merged["status"] == "merged" and merged["merged_into"] == {"id": accepted}
        self.act(third, self.station, "merge", into=accepted)
        number = self.case(accepted, self.station)[0]["number"]
        self.until(lambda: self.mine(own["id"]), lambda r: r["status"] == "open" and r["duplicate_of"],
                   "the phone shows the merged report following the case")
        public = self.until(lambda: self.public(third), lambda r: number in r["status_notes"],
                            "Open311 names the case a request was merged into")
        assert public["status"] == "open"

        # fixed on the spot by the grid worker with an after-photo; the station verifies (not the worker)
        self.act(accepted, self.worker, "acknowledge", note="on my way")
        uploaded = requests.post(f"{self.urls['intake']}/intake/v1/reports/{accepted}/photos",
                                 headers=auth(self.worker), files={"file": ("after.jpg", photo(), "image/jpeg")},
                                 data={"kind": "after"}, timeout=10)
        assert uploaded.status_code == 201 and uploaded.json()["kind"] == "after", uploaded.text
        wrong = requests.post(f"{self.urls['intake']}/intake/v1/reports/{accepted}/photos", headers=auth(self.worker),
                              files={"file": ("x.jpg", photo(), "image/jpeg")}, data={"kind": "selfie"}, timeout=10)
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "kind"
        resolved = self.act(accepted, self.worker, "resolve", note="replaced the bulb", photos=[uploaded.json()["id"]])
        assert resolved["verifier"]["level"] == 2 and resolved["resolved_by"] == "wang"
        self.until(lambda: requests.get(f"{self.urls['intake']}/intake/v1/reports/{accepted}",
                                        headers=auth(self.station), timeout=10).json(),
            lambda r: r["status"] == "verifying", "intake sees the case awaiting verification")
        own_check = requests.post(f"{self.urls['intake']}/intake/v1/cases/{accepted}/verification",
                                  headers=auth(self.worker), json={"passed": True}, timeout=10)
        assert own_check.status_code == 403 and "someone other than its handler" in own_check.json()["detail"]
        assert self.case(accepted, self.station)[0]["can_verify"] is True
        checked = requests.post(f"{self.urls['intake']}/intake/v1/cases/{accepted}/verification",
                                headers=auth(self.station), json={"passed": True, "note": "lit"}, timeout=10)
        assert checked.status_code == 202, checked.text
        self.until(lambda: self.case(accepted, self.station)[0], lambda c: c["status"] == "closed", "closed")
        self.until(lambda: self.mine(own["id"]), lambda r: r["status"] == "closed",
                   "the merged report follows its case to closure on the phone")
        assert self.until(lambda: self.public(third), lambda r: r["status"] == "closed",
                          "and in Open311")["status_notes"].startswith(f"merged into {number}")
        self.act(own["id"], self.station, "merge", 409, into=accepted)  # merged already
        fresh = self.report("another lamp, two streets on", "accept-fresh")
        wait_for_case(self.urls["escalation"], fresh["id"], self.worker, timeout=20)
        self.act(fresh["id"], self.station, "merge", 409, into=accepted)  # into a closed case
        photos = requests.get(f"{self.urls['intake']}/intake/v1/reports/{accepted}/photos",
                              headers=auth(self.station), timeout=10).json()
        assert [p["kind"] for p in photos] == ["after"]

        # found by its number and by words, closed or not
        found = requests.get(f"{self.urls['escalation']}/escalation/v1/cases/by-number/{number}",
                             headers=auth(self.station), timeout=10)
        assert found.status_code == 200 and found.json()["id"] == accepted and found.headers["ETag"]
        assert requests.get(f"{self.urls['escalation']}/escalation/v1/cases/by-number/{number}",
                            headers=auth(self.far_station), timeout=10).status_code == 404
        closed = self.listing(self.station, status="closed", q="BRIDGE dark").json()["items"]
        assert [c["number"] for c in closed] == [number]
        assert self.listing(self.station, number="x").status_code == 422

        # a named handler: a case the station holds, assigned to a colleague, found under "mine"
        self.listing(self.colleague)  # li signs in at the station's board
        escalated = fresh["id"]
        self.act(escalated, self.worker, "escalate", reason="needs a lift truck")
        assert self.act(escalated, self.station, "assign", 422, assignee="far")["errors"][0]["field"] == "assignee"
        assigned = self.act(escalated, self.station, "assign", assignee="li")
        assert assigned["assignee"] == "li" and assigned["timeline"][-1]["type"] == "assigned"
        assert "li" in assigned["assignable"] and "zhou" in assigned["assignable"]
        mine = self.listing(self.colleague, assignee="me").json()["items"]
        assert [c["id"] for c in mine] == [escalated]
        unassigned = {c["id"] for c in self.listing(self.station, assignee="none", status="open").json()["items"]}
        assert escalated not in unassigned
        table = self.listing(self.station, assignee="li", format="csv")
        assert table.headers["Content-Type"].startswith("text/csv")
        rows = table.content.decode("utf-8-sig").splitlines()
        # a person's CSV: its columns named in Chinese without an Accept-Language
        assert rows[0].startswith("案卷号,案卷标识,类别代码") and ",li," in rows[1]
        return [refused, accepted, own["id"], third, escalated]


def apikey(data, env: dict | None = None) -> str:
    return subprocess.run(GRIDCASE + ["apikey", "create", "--name", "civic", "--data-dir", str(data)], cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=True, capture_output=True, text=True).stdout.strip()


def policy_env(tmp_path) -> dict:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text(), encoding="utf-8")
    return {"GRIDCASE_POLICY_FILE": str(path)}


def check_audit(service, case_ids: list[str]) -> None:
    """Every step is in the audit chain, which verifies."""
    with service.uow() as uow:
        rows = list(uow.store.audit_rows())
    assert audit.verify(rows) is None
    actions = {r.action for r in rows if r.case_id in case_ids}
    assert {"refused", "severity_set", "accepted", "merged", "merged_in", "resolved", "verified", "closed",
            "assigned"} <= actions


def test_acceptance_endings_search_and_handlers_end_to_end_embedded(tmp_path):
    from services.escalation import bootstrap
    from shared.config import from_env

    env = policy_env(tmp_path)
    with embedded_system(tmp_path, env=env) as base:
        city = City({s: base for s in ("intake", "dispatch", "escalation")},
                    lambda role, **claims: token(tmp_path, role, **claims), apikey(tmp_path))
        case_ids = city.walk()
    check_audit(bootstrap.build(from_env(tmp_path, env=env), web=False), case_ids)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_acceptance_endings_search_and_handlers_end_to_end_on_rabbitmq_and_postgres(tmp_path, broker_url,
                                                                                    postgres_urls):
    from services.escalation import bootstrap
    from shared.config import Settings

    system = Production(tmp_path, broker_url, postgres_urls, env=policy_env(tmp_path))
    try:
        system.start()
        case_ids = City(system.urls, system.token, apikey(tmp_path, system.env)).walk()
    finally:
        system.processes.stop_all()
    settings = Settings(database_urls={"escalation": postgres_urls["escalation"]}, secret="x")
    check_audit(bootstrap.build(settings, web=False), case_ids)
