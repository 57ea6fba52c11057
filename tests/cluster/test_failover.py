"""The death of one node under steady load: gridcase (three APIs, each service's worker and the scheduler,
as separate processes) runs on the cluster with every node listed in its URLs; reports arrive at a steady
rate, and a phone retries a report that was refused or not answered with the same Idempotency-Key. One node
is SIGKILLed mid-stream. At the end every accepted report is exactly one case in every service, the queues
are drained and nothing was dead-lettered; the outage each fault caused is measured and printed."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
import sqlalchemy as sa

from harness.processes import wait_for
from shared.db import make_engine
from tests.cluster.conftest import outages
from tests.faults.test_crashes import assert_invariants
from tests.support.system import Production, a_point_in_grid, auth

RATE = 20  # reports per second
RETRY_FOR = 120.0  # seconds a phone keeps retrying one report


class SteadyReports:
    """``RATE`` reports a second for ``seconds`` from a pool of senders. Each report is retried with its own
    Idempotency-Key while the answer is 503 or none comes (a phone on a bad network), until it is 201."""

    def __init__(self, production: Production, tag: str, seconds: float):
        token = production.token("admin")
        _, self.lon, self.lat = a_point_in_grid(production.urls["dispatch"], token, index=5)
        self.url = f"{production.urls['intake']}/intake/v1/reports"
        self.headers = auth(token)
        self.tag, self.seconds = tag, seconds
        self.accepted: dict[str, str] = {}  # Idempotency-Key → report id
        self.answered_at: list[float] = []  # monotonic times of the 201s
        self.refused = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []

    def start(self) -> SteadyReports:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def join(self) -> dict[str, str]:
        self.thread.join(self.seconds + RETRY_FOR + 30)
        assert not self.thread.is_alive(), "the senders did not finish"
        assert not self.errors, self.errors[:5]
        return self.accepted

    def longest_silence(self) -> float:
        """The longest time between two 201s (the intake's write outage)."""
        times = sorted(self.answered_at)
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def _run(self) -> None:
        n = int(self.seconds * RATE)
        with ThreadPoolExecutor(16) as pool:
            for i in range(n):
                delay = self.started + i / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._send, i)

    def _send(self, i: int) -> None:
        key = f"{self.tag}-{i}"
        body = {"category": "road_damage", "description": f"{self.tag} {i}",
                "location": {"lon": self.lon, "lat": self.lat}}
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline:
            try:
                response = requests.post(self.url, json=body, timeout=10,
                                         headers={**self.headers, "Idempotency-Key": key})
            except requests.RequestException:
                response = None
            if response is not None and response.status_code == 201:
                with self.lock:
                    self.accepted[key] = response.json()["id"]
                    self.answered_at.append(time.monotonic())
                return
            if response is not None and response.status_code not in (502, 503, 504):
                self.errors.append(f"{key}: {response.status_code} {response.text[:200]}")
                return
            with self.lock:
                self.refused += 1
            time.sleep(0.25)
        self.errors.append(f"{key}: no 201 within {RETRY_FOR}s")


class CaseCount:
    """Polls the escalation database's case count; ``longest_stall`` is the pipeline's outage: the longest time
    the count did not grow while accepted reports were still waiting for their case."""

    def __init__(self, production: Production, reports: SteadyReports):
        self.engine = make_engine(production.env["GRIDCASE_ESCALATION_DATABASE_URL"])
        self.reports = reports
        self.grew_at: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CaseCount:
        self.thread.start()
        return self

    def stop(self) -> float:
        self.stopping.set()
        self.thread.join(10)
        self.engine.dispose()
        times = self.grew_at
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def _run(self) -> None:
        last = -1
        while not self.stopping.wait(0.1):
            try:
                with self.engine.connect() as db:
                    count = db.execute(sa.text("SELECT count(*) FROM cases")).scalar()
            except sa.exc.SQLAlchemyError:
                continue
            if count > last:
                last = count
                self.grew_at.append(time.monotonic())
            if self.reports.thread.is_alive() is False and count >= len(self.reports.accepted):
                return


def ids(production: Production) -> dict[str, set[str]]:
    queries = {"intake": "SELECT id FROM reports", "dispatch": "SELECT case_id FROM dispatches",
               "escalation": "SELECT id FROM cases"}
    out = {}
    for service, sql in queries.items():
        engine = make_engine(production.env[f"GRIDCASE_{service.upper()}_DATABASE_URL"])
        with engine.connect() as db:
            out[service] = {row[0] for row in db.execute(sa.text(sql))}
        engine.dispose()
    return out


def assert_every_report_is_one_case(production: Production, accepted: dict[str, str]) -> None:
    assert len(set(accepted.values())) == len(accepted), "a retried report was given a second id"
    assert_invariants(production, len(accepted))  # counts equal, queues drained, no dead letter
    found = ids(production)
    expected = set(accepted.values())
    assert found == {"intake": expected, "dispatch": expected, "escalation": expected}


def quorum_leader(cluster, queue: str) -> int:
    listed = json.loads(cluster.rabbitmq_ctl(1 if cluster.alive_rabbitmq(1) else 2, "list_queues", "name", "leader",
                                             "--formatter", "json"))
    [row] = [q for q in listed if q["name"] == queue]
    return cluster.rabbitmq_node(row["leader"])


def test_the_quorum_leaders_node_killed_under_steady_load_loses_and_duplicates_no_case(cluster, system):
    victim = quorum_leader(cluster, "gridcase.dispatch.locate")
    reports = SteadyReports(system, "rmq-kill", seconds=25).start()
    cases = CaseCount(system, reports).start()
    try:
        wait_for(lambda: len(reports.accepted) > 5 * RATE, timeout=60, message="reports flowing")
        cluster.kill("rabbitmq", victim)
        killed_at = time.monotonic()
        accepted = reports.join()
    finally:
        stall = cases.stop()
    try:
        assert len(accepted) == 25 * RATE
        assert_every_report_is_one_case(system, accepted)
        assert quorum_leader(cluster, "gridcase.dispatch.locate") != victim, "a new leader was elected"
    finally:
        cluster.revive("rabbitmq", victim)
    outages.append((f"RabbitMQ: quorum leader's node SIGKILLed (node {victim}): pipeline stalled", stall))
    outages.append(("RabbitMQ: quorum leader's node SIGKILLed: intake write outage", reports.longest_silence()))
    assert killed_at > reports.started


def test_the_postgresql_primary_killed_under_steady_load_loses_no_acknowledged_report(cluster, system):
    primary = cluster.postgres_primary()
    assert primary is not None
    reports = SteadyReports(system, "pg-kill", seconds=30).start()
    try:
        wait_for(lambda: len(reports.accepted) > 5 * RATE, timeout=60, message="reports flowing")
        cluster.kill("postgres", primary)
        accepted = reports.join()
        standby = 3 - primary
        assert cluster.postgres_primary() == standby, "the standby was promoted"
        assert len(accepted) == 30 * RATE, "every report was accepted in the end: clients found the new primary"
        assert reports.refused > 0, "the kill was felt"
        assert_every_report_is_one_case(system, accepted)
    finally:
        cluster.revive("postgres", primary)
        # It rejoins by pg_rewind or, failing that, a full base backup of every test's databases so far:
        # 2 minutes and more on the loaded 2-core CI machine.
        wait_for(lambda: cluster.postgres_standby_ready(primary), timeout=300, interval=1,
                 message=f"PostgreSQL node {primary} back as the standby")
    outages.append((f"PostgreSQL: primary (node {primary}) SIGKILLed: intake write outage", reports.longest_silence()))
