"""Server outages under the production topology: PostgreSQL stopped while reports keep coming."""
from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.faults.test_crashes import assert_invariants
from tests.support.system import ROOT, a_point_in_grid, auth

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def postgres(action: str) -> None:
    base = os.environ.get("GRIDCASE_TEST_POSTGRES_BASE")
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail("GRIDCASE_TEST_POSTGRES_BASE is needed to stop and start PostgreSQL")
        pytest.skip("PostgreSQL not started by deploy/local/postgres.sh: cannot stop it")
    subprocess.run([str(ROOT / "deploy/local/postgres.sh"), action, base], check=True, timeout=120,
                   stdout=subprocess.DEVNULL)


def test_while_postgres_is_down_intake_answers_503_and_every_accepted_report_arrives_after(production):
    admin = production.token("admin")
    _, lon, lat = a_point_in_grid(production.urls["dispatch"], admin, index=9)
    intake = f"{production.urls['intake']}/intake/v1/reports"

    def report(i):
        return requests.post(intake, timeout=10, headers=auth(admin, **{"Idempotency-Key": f"outage-{i}"}), json={
            "category": "road_damage", "description": f"outage {i}", "location": {"lon": lon, "lat": lat}})

    accepted = {report(i).json()["id"] for i in range(10)}
    postgres("stop")
    try:
        refused = [report(i) for i in range(10, 20)]
        assert {r.status_code for r in refused} == {503}
        assert refused[0].headers["Retry-After"] and refused[0].json()["status"] == 503
        time.sleep(5)  # the workers meet the outage too
    finally:
        postgres("start")
    for i in range(10, 20):  # the clients retry with the same keys
        deadline = time.monotonic() + 30
        while (response := report(i)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert response.status_code == 201, response.text
        accepted.add(response.json()["id"])
    assert len(accepted) == 20
    assert_invariants(production, 20)


def test_a_rabbitmq_restart_under_load_loses_no_report_and_the_services_reconnect_by_themselves(production):
    base = os.environ.get("GRIDCASE_TEST_RABBITMQ_BASE")
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail("GRIDCASE_TEST_RABBITMQ_BASE is needed to restart RabbitMQ")
        pytest.skip("RabbitMQ not started by deploy/local/rabbitmq.sh: cannot restart it")
    admin = production.token("admin")
    _, lon, lat = a_point_in_grid(production.urls["dispatch"], admin, index=11)
    intake = f"{production.urls['intake']}/intake/v1/reports"
    accepted: set[str] = set()
    stop = time.monotonic() + 12

    def keep_reporting():
        i = 0
        while time.monotonic() < stop:
            response = requests.post(intake, timeout=10, headers=auth(admin, **{"Idempotency-Key": f"rmq-{i}"}),
                                     json={"category": "road_damage", "description": f"rmq {i}",
                                           "location": {"lon": lon, "lat": lat}})
            assert response.status_code == 201, response.text  # intake needs only its database
            accepted.add(response.json()["id"])
            i += 1
            time.sleep(0.02)

    with ThreadPoolExecutor(1) as pool:
        flow = pool.submit(keep_reporting)
        time.sleep(2)
        subprocess.run([str(ROOT / "deploy/local/rabbitmq.sh"), "restart", base], check=True, timeout=180,
                       stdout=subprocess.DEVNULL)
        flow.result()
    assert len(accepted) > 100
    assert_invariants(production, len(accepted))
