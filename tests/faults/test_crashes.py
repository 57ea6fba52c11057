"""Workers killed with SIGKILL at the worst moments: nothing accepted is lost, nothing happens twice."""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from harness.processes import wait_for
from harness.servers import queue_depth
from shared.db import make_engine
from tests.support.system import a_point_in_grid, auth, consumers

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
QUEUES = ("gridcase.dispatch.locate", "gridcase.escalation.open", "gridcase.intake.status")


def post_reports(production, n: int, tag: str, base: str | None = None) -> set[str]:
    """``n`` reports, 4 at a time, to ``base`` (default: the intake API); returns their ids."""
    admin = production.token("admin")
    _, lon, lat = a_point_in_grid(production.urls["dispatch"], admin, index=7)

    def send(i):
        response = requests.post(f"{base or production.urls['intake']}/intake/v1/reports", timeout=10, headers=auth(
            admin, **{"Idempotency-Key": f"{tag}-{i}"}), json={
            "category": "road_damage", "description": f"{tag} {i}", "location": {"lon": lon, "lat": lat}})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        return set(pool.map(send, range(n)))


def counts(production) -> dict[str, int]:
    queries = {"intake": "SELECT count(*) FROM reports", "dispatch": "SELECT count(*) FROM dispatches",
               "escalation": "SELECT count(*) FROM cases"}
    out = {}
    for service, sql in queries.items():
        engine = make_engine(production.env[f"GRIDCASE_{service.upper()}_DATABASE_URL"])
        with engine.connect() as db:
            out[service] = db.execute(sa.text(sql)).scalar()
        engine.dispose()
    return out


def assert_invariants(production, expected: int) -> None:
    """I1: one report, one dispatch, one case each; I3: queues drained; I4: no dead letters."""
    wait_for(lambda: counts(production)["escalation"] == expected, timeout=60, message=f"{expected} cases")
    assert counts(production) == {"intake": expected, "dispatch": expected, "escalation": expected}
    for queue in QUEUES:
        wait_for(lambda q=queue: queue_depth(production.broker_url, q) == 0, timeout=30, message=f"{queue} empty")
    assert queue_depth(production.broker_url, "gridcase.dead-letter") == 0


def test_a_dispatch_worker_killed_after_commit_before_ack_dispatches_nothing_twice(production):
    production.processes.kill("worker-dispatch")
    crashing = production.start_worker("dispatch", GRIDCASE_CRASH_AT="consumer.after_commit")
    wait_for(lambda: consumers(production.broker_url, "gridcase.dispatch.locate") > 0, timeout=30,
             message="the crashing worker consumes")
    ids = post_reports(production, 30, "crash")
    assert crashing.wait(30) == -9, "the worker killed itself after its first commit"
    assert 0 < counts(production)["dispatch"], "it committed before dying"
    production.start_worker("dispatch")
    assert_invariants(production, len(ids))


def test_workers_killed_at_random_moments_while_reports_flow_lose_and_repeat_nothing(production):
    rng = random.Random(7)
    ids: set[str] = set()
    with ThreadPoolExecutor(1) as pool:
        flow = pool.submit(post_reports, production, 150, "flow")
        for _ in range(6):
            time.sleep(rng.uniform(0.1, 0.6))
            victim = rng.choice(["dispatch", "escalation", "intake"])
            production.processes.kill(f"worker-{victim}")
            production.start_worker(victim)
        ids |= flow.result()
    assert_invariants(production, len(ids))
