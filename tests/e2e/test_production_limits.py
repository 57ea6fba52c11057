"""Limits and first-wins rules hold across processes: intake under gunicorn with two workers on PostgreSQL
(and RabbitMQ), where each worker once counted a person's reports alone. A burst of 100 reports stores
exactly the allowance, 20 concurrent photos of one report store its 10, and of concurrent verifications
the first is sent and every other answered 409."""
from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.images import jpeg
from tests.support.system import Production, a_point_in_grid, auth, wait_for_case

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
REPORTS_PER_MINUTE = 30


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    from harness.servers import create_database, drop_database, purge_broker
    from tests.support.system import required_server

    broker_url, admin_url = required_server("GRIDCASE_TEST_BROKER_URL"), required_server("GRIDCASE_TEST_POSTGRES_URL")
    purge_broker(broker_url)
    names = {s: f"gridcase_{s}_{uuid.uuid4().hex[:10]}" for s in ("intake", "dispatch", "escalation")}
    urls = {s: create_database(admin_url, n) for s, n in names.items()}
    production = Production(tmp_path_factory.mktemp("limits"), broker_url, urls, web_workers={"intake": 2}, env={
        "GRIDCASE_REPORT_RATE_LIMIT": f"{REPORTS_PER_MINUTE}/minute", "GRIDCASE_PHOTO_RATE_LIMIT": "100/minute"})
    try:
        yield production.start()
    finally:
        production.processes.stop_all()
        for name in names.values():
            drop_database(admin_url, name)


def intake_workers(system) -> int:
    log = (system.data / "serve-intake.log").read_text(errors="replace")
    return len(set(re.findall(r"Booting worker with pid: (\d+)", log)))


def report(system, who, lon, lat, n=0):
    return requests.post(f"{system.urls['intake']}/intake/v1/reports", headers=auth(who), timeout=30, json={
        "category": "street_light", "description": f"lamp {n}", "location": {"lon": lon, "lat": lat}})


def test_a_burst_of_100_reports_on_two_gunicorn_workers_stores_exactly_the_allowance(system):
    assert intake_workers(system) == 2
    admin = system.token("admin")
    grid, lon, lat = a_point_in_grid(system.urls["dispatch"], admin)
    worker = system.token("grid_worker", area=grid, user=f"burst-{uuid.uuid4().hex[:6]}")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda n: report(system, worker, lon, lat, n), range(100)))

    codes = [a.status_code for a in answers]
    assert codes.count(201) == REPORTS_PER_MINUTE and codes.count(429) == 100 - REPORTS_PER_MINUTE, codes
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in answers if a.status_code == 429)
    mine = requests.get(f"{system.urls['intake']}/intake/v1/reports", params={"mine": 1, "page_size": 500},
                        headers=auth(worker), timeout=30).json()
    assert mine["total"] == REPORTS_PER_MINUTE


def test_20_concurrent_photos_on_two_workers_store_the_reports_10(system):
    admin = system.token("admin")
    grid, lon, lat = a_point_in_grid(system.urls["dispatch"], admin, index=3)
    worker = system.token("grid_worker", area=grid, user=f"photos-{uuid.uuid4().hex[:6]}")
    report_id = report(system, worker, lon, lat).json()["id"]

    def upload(n):
        return requests.post(f"{system.urls['intake']}/intake/v1/reports/{report_id}/photos", headers=auth(worker),
                             files={"file": ("p.jpg", jpeg(40 + n, 30), "image/jpeg")}, timeout=60)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(upload, range(20)))

    codes = [a.status_code for a in answers]
    assert codes.count(201) == 10 and codes.count(422) == 10, codes
    listed = requests.get(f"{system.urls['intake']}/intake/v1/reports/{report_id}/photos", headers=auth(worker),
                          timeout=30).json()
    assert len(listed) == 10


def test_concurrent_verifications_on_two_workers_the_first_is_sent_and_the_others_answered_409(system):
    admin = system.token("admin")
    grid, lon, lat = a_point_in_grid(system.urls["dispatch"], admin, index=5)
    worker = system.token("grid_worker", area=grid, user=f"verifier-{uuid.uuid4().hex[:6]}")
    located = requests.get(f"{system.urls['dispatch']}/dispatch/v1/locate", params={"lon": lon, "lat": lat},
                           headers=auth(admin), timeout=30).json()
    station = system.token("station", area=located["station"]["id"])  # a grid worker's own fix: the station checks
    case_id = report(system, worker, lon, lat).json()["id"]
    wait_for_case(system.urls["escalation"], case_id, worker, timeout=30)
    case = requests.get(f"{system.urls['escalation']}/escalation/v1/cases/{case_id}", headers=auth(worker), timeout=30)
    resolved = requests.post(f"{system.urls['escalation']}/escalation/v1/cases/{case_id}/actions", timeout=30,
                             headers=auth(worker, **{"If-Match": case.headers["ETag"]}),
                             json={"action": "resolve", "note": "bulb replaced"})
    assert resolved.status_code == 200, resolved.text
    deadline = time.monotonic() + 30
    while requests.get(f"{system.urls['intake']}/intake/v1/reports/{case_id}", headers=auth(worker),
                       timeout=30).json()["status"] != "verifying":
        assert time.monotonic() < deadline, "intake never heard the case was resolved"
        time.sleep(0.1)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda passed: requests.post(
            f"{system.urls['intake']}/intake/v1/cases/{case_id}/verification", headers=auth(station), timeout=30,
            json={"passed": passed, "note": "checked"}), [True, False] * 4))

    assert sorted(a.status_code for a in answers) == [202] + [409] * 7, [a.text for a in answers]
