"""Linked handling (部门联动) end to end, over real HTTP: a burst water main opens at its grid, led by the
water company with the traffic police co-handling; each department acknowledges and feeds back (the lead
with an after-photo), the grid worker verifies and the case closes, and the statistics by department show
both. A department that declines sends the case back to whoever assigned it, who assigns another; a
department past its deadline is shown overdue without the case climbing the ladder. Embedded (SQLite,
in-memory bus) and on RabbitMQ + PostgreSQL (separate processes)."""
from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from PIL import Image

from gridcase.cities import DEMO_DEPARTMENTS
from harness.processes import wait_for
from shared.clock import isoformat
from tests.support.system import Production, a_point_in_grid, auth, embedded_system, token, wait_for_case

SCALE = 600.0  # ten minutes of service time per real second: the urgent department limit (4 h) is 24 s


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 90, 160)).save(out, "JPEG")
    return out.getvalue()


class City:
    """The people of one city and the calls they make."""

    def __init__(self, urls: dict[str, str], make_token):
        self.urls, self.token = urls, make_token
        admin = make_token("admin")
        self.grid, self.lon, self.lat = a_point_in_grid(urls["dispatch"], admin)
        self.worker = make_token("grid_worker", area=self.grid, user="wang")
        self.command = make_token("command", user="duty-officer")
        self.water = make_token("department", department="water", user="water-dispatcher")
        self.traffic = make_token("department", department="traffic_police")
        self.housing = make_token("department", department="housing")
        self.supervisor = make_token("supervisor", user="sun")

    def report(self, key: str, category: str = "water_main_burst") -> str:
        filed = requests.post(f"{self.urls['intake']}/intake/v1/reports", headers=auth(self.worker, **{
            "Idempotency-Key": key}), timeout=10, json={"category": category, "description": "water on the road",
                                                        "location": {"lon": self.lon, "lat": self.lat}})
        assert filed.status_code == 201, filed.text
        return filed.json()["id"]

    def case(self, case_id: str, who: str) -> requests.Response:
        return requests.get(f"{self.urls['escalation']}/escalation/v1/cases/{case_id}", headers=auth(who), timeout=10)

    def act(self, case_id: str, who: str, action: str, expect: int = 200, **arguments) -> dict:
        read = self.case(case_id, who)
        assert read.status_code == (404 if expect == 404 else 200), read.text
        response = requests.post(f"{self.urls['escalation']}/escalation/v1/cases/{case_id}/actions",
                                 headers=auth(who, **{"If-Match": read.headers.get("ETag", '"1"')}),
                                 json={"action": action, **arguments}, timeout=10)
        assert response.status_code == expect, response.text
        return response.json()

    def until(self, case_id: str, who: str, test, what: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        case = None
        while time.monotonic() < deadline:
            case = self.case(case_id, who).json()
            if test(case):
                return case
            time.sleep(0.05)
        raise AssertionError(f"case {case_id}: {what} within {timeout}s; last seen {case}")

    def opened_with_departments(self, case_id: str) -> dict:
        wait_for_case(self.urls["escalation"], case_id, self.worker, timeout=15)
        return self.until(case_id, self.command, lambda c: len(c["departments"]) == 2, "gets its departments")


def walk_the_burst_water_main(city: City) -> None:
    case_id = city.report("burst-1")
    case = city.opened_with_departments(case_id)
    assert case["owner"] == {**case["owner"], "level": 1, "area_id": city.grid}
    assert case["status"] == "dispatched"
    assert [(d["id"], d["role"], d["status"]) for d in case["departments"]] == [
        ("water", "lead", "assigned"), ("traffic_police", "co", "assigned")]
    assert case["deadline"] == case["departments"][0]["deadline"], "a dispatched case shows its lead's deadline"

    # each department sees the case among its own, and nothing else
    listed = requests.get(f"{city.urls['escalation']}/escalation/v1/cases", headers=auth(city.water), timeout=10)
    assert [c["id"] for c in listed.json()["items"]] == [case_id]
    assert city.case(case_id, city.housing).status_code == 404, "a department not assigned does not see it"
    city.act(case_id, city.housing, "acknowledge", expect=404)

    assert "acknowledge" in city.case(case_id, city.water).json()["actions"]
    city.act(case_id, city.water, "acknowledge", note="crew on the way")
    city.act(case_id, city.water, "acknowledge", expect=409)
    # intake learns of the water company's part from escalation's messages, a moment after escalation has it
    wait_for(lambda: requests.get(f"{city.urls['intake']}/intake/v1/reports/{case_id}", headers=auth(city.water),
                                  timeout=10).status_code == 200, timeout=10, message="intake knows the department")
    photo = requests.post(f"{city.urls['intake']}/intake/v1/reports/{case_id}/photos", headers=auth(city.water),
                          files={"file": ("after.jpg", jpeg(), "image/jpeg")}, timeout=10)
    assert photo.status_code == 201, photo.text
    city.act(case_id, city.traffic, "feedback", outcome="done", note="lane closed, diversion signed")
    case = city.act(case_id, city.water, "feedback", outcome="done", note="main repaired",
                    photos=[photo.json()["id"]])
    assert case["status"] == "verifying" and case["departments"][0]["photos"] == [photo.json()["id"]]
    city.act(case_id, city.water, "feedback", expect=409, outcome="done", note="again")

    # the grid worker checks on site: closed
    deadline = time.monotonic() + 15
    while requests.get(f"{city.urls['intake']}/intake/v1/reports/{case_id}", headers=auth(city.worker),
                       timeout=10).json()["status"] != "verifying":
        assert time.monotonic() < deadline, "intake never heard the case await verification"
        time.sleep(0.05)
    verified = requests.post(f"{city.urls['intake']}/intake/v1/cases/{case_id}/verification",
                             headers=auth(city.worker), json={"passed": True, "note": ""}, timeout=10)
    assert verified.status_code == 202, verified.text
    case = city.until(case_id, city.worker, lambda c: c["status"] == "closed", "closes")
    assert [s["type"] for s in case["timeline"]] == [
        "opened", "department_assigned", "department_assigned", "department_acknowledged", "department_done",
        "department_done", "resolved", "verified", "closed"]

    # statistics by department show both
    today = datetime.now(UTC).date()
    stats = requests.get(f"{city.urls['escalation']}/escalation/v1/stats/closure-times", headers=auth(
        city.supervisor), params={"group_by": "department", "period": "month", "from": str(today - timedelta(days=2)),
                                  "to": str(today + timedelta(days=2))}, timeout=10)
    assert stats.status_code == 200, stats.text
    rows = {r["department"]: r for r in stats.json()["rows"]}
    assert rows["water"]["done"] >= 1 and rows["water"]["acknowledged"] >= 1
    assert rows["traffic_police"]["done"] >= 1 and rows["water"]["time_to_feedback"]["median"] is not None


def walk_a_decline(city: City) -> None:
    case_id = city.report("burst-2")
    city.opened_with_departments(case_id)
    city.act(case_id, city.water, "feedback", expect=422, outcome="declined")
    case = city.act(case_id, city.water, "feedback", outcome="declined", reason="a private pipe: not ours")
    assert (case["status"], case["level"]) == ("open", 4), "back to the command center, which assigned it"
    city.act(case_id, city.command, "assign_department", expect=422, department="no_such", role="lead")
    city.act(case_id, city.command, "assign_department", expect=422, department="housing", role="boss")
    case = city.act(case_id, city.command, "assign_department", department="housing", role="lead",
                    note="private supply pipes")
    assert case["status"] == "dispatched" and case["departments"][-1]["id"] == "housing"
    city.act(case_id, city.command, "assign_department", expect=409, department="housing", role="co")
    assert city.case(case_id, city.housing).status_code == 200


def departments_published(city: City, timeout: float = 20.0) -> None:
    """Wait until the services have heard of the city's departments (intake's categories name them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        categories = requests.get(f"{city.urls['intake']}/intake/v1/categories", timeout=10).json()
        if next(c for c in categories if c["code"] == "water_main_burst")["lead_department"] == "water":
            return
        time.sleep(0.1)
    raise AssertionError("the departments were never published")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    data = tmp_path_factory.mktemp("departments")
    env = {"GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_CLOCK_ANCHOR": isoformat(datetime.now(UTC))}
    with embedded_system(data, env=env) as base:  # the demo city imports its departments on first start
        city = City({s: base for s in ("intake", "dispatch", "escalation")},
                    lambda role, **claims: token(data, role, env=env, **claims))
        departments_published(city)
        yield city


def test_a_burst_water_main_is_led_by_the_water_company_and_verified_by_the_grid_worker(embedded):
    walk_the_burst_water_main(embedded)


def test_a_department_that_declines_sends_the_case_back_to_the_command_center(embedded):
    walk_a_decline(embedded)


def test_a_department_past_its_deadline_is_overdue_on_the_board_and_the_case_does_not_climb(embedded):
    case_id = embedded.report("burst-3")
    embedded.opened_with_departments(case_id)
    embedded.act(case_id, embedded.water, "acknowledge")
    case = embedded.until(case_id, embedded.command, lambda c: all(d["overdue"] for d in c["departments"])
                          and c["timeline"][-1]["type"] == "department_overdue",
                          "the departments' deadline passes (4 h of service time)", timeout=60)
    assert case["level"] == 1 and case["status"] == "dispatched" and case["department_overdue"]
    assert [s["type"] for s in case["timeline"]].count("department_overdue") == 2
    assert "escalated" not in [s["type"] for s in case["timeline"]]
    listed = requests.get(f"{embedded.urls['escalation']}/escalation/v1/cases", headers=auth(embedded.command),
                          timeout=10).json()["items"]
    assert next(c for c in listed if c["id"] == case_id)["department_overdue"]


def test_the_departments_are_listed_and_a_department_token_needs_one_of_them(embedded, tmp_path):
    listed = requests.get(f"{embedded.urls['dispatch']}/dispatch/v1/departments", headers=auth(embedded.water),
                          timeout=10)
    assert listed.status_code == 200
    assert {"water", "traffic_police", "housing"} <= {d["id"] for d in listed.json()["departments"]}
    categories = requests.get(f"{embedded.urls['intake']}/intake/v1/categories", timeout=10).json()
    burst = next(c for c in categories if c["code"] == "water_main_burst")
    assert (burst["lead_department"], burst["co_departments"]) == ("water", ["traffic_police"])
    assert requests.get(f"{embedded.urls['dispatch']}/dispatch/v1/departments", params={"x": "1"},
                        headers=auth(embedded.water), timeout=10).status_code == 422
    forbidden = requests.post(f"{embedded.urls['intake']}/intake/v1/reports", headers=auth(embedded.water),
                              json={"category": "other", "description": "x", "location": {"lon": 1, "lat": 1}},
                              timeout=10)
    assert forbidden.status_code == 403, "a department files no reports"


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_linked_handling_on_rabbitmq_and_postgres(tmp_path, broker_url, postgres_urls):
    system = Production(tmp_path, broker_url, postgres_urls)
    try:
        system.start(departments=DEMO_DEPARTMENTS)
        city = City(system.urls, system.token)
        departments_published(city)
        walk_the_burst_water_main(city)
        walk_a_decline(city)
    finally:
        system.processes.stop_all()
