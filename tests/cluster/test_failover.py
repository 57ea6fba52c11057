"""The death of one node under steady load: gridcase scaled out (``topology.FullTopology``: two replicas of
every API behind nginx, two workers of every service, two schedulers) runs on the cluster with every node
listed in its URLs; reports arrive through the gateway at a steady rate, and a phone retries a report that
was refused or not answered with the same Idempotency-Key. One node is SIGKILLed mid-stream. The tests of
this module share one such stack (the reports of each add up); after each fault the loop's invariants hold
for every report accepted so far (``topology.assert_loop_invariants``), and the outage it caused is measured
and printed."""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from harness.processes import wait_for
from shared.db import make_engine
from tests.cluster.conftest import outages
from tests.cluster.topology import FullTopology, assert_loop_invariants
from tests.support.system import Production, a_point_in_grid, auth

RATE = 20  # reports per second
RETRY_FOR = 120.0  # seconds a phone keeps retrying one report


class SteadyReports:
    """``RATE`` reports a second for ``seconds`` from a pool of senders. Each report is retried with its own
    Idempotency-Key while the answer is 503 or none comes (a phone on a bad network), until it is 201."""

    def __init__(self, production: Production, tag: str, seconds: float, base: str | None = None):
        token = production.token("admin")
        _, self.lon, self.lat = a_point_in_grid(production.urls["dispatch"], token, index=5)
        self.url = f"{base or production.urls['intake']}/intake/v1/reports"
        self.headers = auth(token)
        self.tag, self.seconds = tag, seconds
        self.accepted: dict[str, str] = {}  # Idempotency-Key → report id
        self.answered_at: list[float] = []  # monotonic times of the 201s
        self.refused = 0
        self.in_flight: set[str] = set()  # the keys of the reports being sent now (not yet answered 201)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []
        self.abandoned = threading.Event()  # set: send nothing more, retry nothing (a test that failed)

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
                if self.abandoned.is_set():
                    return
                delay = self.started + i / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._send, i)

    def _send(self, i: int) -> None:
        key = f"{self.tag}-{i}"
        body = {"category": "road_damage", "description": f"{self.tag} {i}",
                "location": {"lon": self.lon, "lat": self.lat}}
        deadline = time.monotonic() + RETRY_FOR
        with self.lock:
            self.in_flight.add(key)
        while time.monotonic() < deadline and not self.abandoned.is_set():
            try:
                response = requests.post(self.url, json=body, timeout=10,
                                         headers={**self.headers, "Idempotency-Key": key})
            except requests.RequestException:
                response = None
            if response is not None and response.status_code == 201:
                with self.lock:
                    self.accepted[key] = response.json()["id"]
                    self.answered_at.append(time.monotonic())
                    self.in_flight.discard(key)
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


def assert_every_report_is_one_case(production: Production, accepted: dict[str, str]) -> None:
    """The loop's invariants for ``accepted`` (Idempotency-Key → report id)."""
    assert_loop_invariants(production, accepted)


def quorum_leader(cluster, queue: str, ask: int | None = None) -> int:
    """The number of the node that leads ``queue``, as node ``ask`` (default: 1, or 2 if 1 is down) sees it."""
    ask = ask or (1 if cluster.alive_rabbitmq(1) else 2)
    listed = json.loads(cluster.rabbitmq_ctl(ask, "list_queues", "name", "leader", "--formatter", "json"))
    [row] = [q for q in listed if q["name"] == queue]
    return cluster.rabbitmq_node(row["leader"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory, cluster):
    """One scaled-out gridcase for the module, and every report it accepted so far (``stack.accepted``)."""
    topology = FullTopology(tmp_path_factory.mktemp("failover"), cluster.broker_url, cluster.databases())
    try:
        topology.start()
        topology.accepted, topology.senders = {}, []
        yield topology
    finally:
        for reports in getattr(topology, "senders", []):  # a failed test's phones stop retrying
            reports.abandoned.set()
        topology.stop()


def steady(stack, tag: str, seconds: float) -> SteadyReports:
    reports = SteadyReports(stack.production, tag, seconds, base=stack.url)
    stack.senders.append(reports)
    return reports.start()


def test_the_quorum_leaders_node_killed_under_steady_load_loses_and_duplicates_no_case(cluster, stack):
    system = stack.production
    victim = quorum_leader(cluster, "gridcase.dispatch.locate")
    reports = steady(stack, "rmq-kill", seconds=25)
    cases = CaseCount(system, reports).start()
    try:
        wait_for(lambda: len(reports.accepted) > 5 * RATE, timeout=60, message="reports flowing")
        cluster.kill("rabbitmq", victim)
        killed_at = time.monotonic()
        accepted = reports.join()
    finally:
        stall = cases.stop()
    stack.accepted |= accepted
    try:
        assert len(accepted) == 25 * RATE
        assert_loop_invariants(system, stack.accepted)
        assert quorum_leader(cluster, "gridcase.dispatch.locate") != victim, "a new leader was elected"
    finally:
        cluster.revive("rabbitmq", victim)
    outages.append((f"RabbitMQ: quorum leader's node SIGKILLed (node {victim}): pipeline stalled", stall))
    outages.append(("RabbitMQ: quorum leader's node SIGKILLed: intake write outage", reports.longest_silence()))
    assert killed_at > reports.started


def test_a_rabbitmq_node_cut_off_the_network_and_healed_under_steady_load_loses_and_duplicates_no_case(cluster,
                                                                                                        stack):
    """A real partition: the quorum leader's node is cut off (its namespace's cable down, cluster.sh cut:
    its packets are dropped, no connection is closed), so its peers and its clients only learn it from
    silence. The other two go on as the majority; the cut node pauses (pause_minority). Healed, it
    rejoins by itself and no partition is left recorded."""
    refused = cluster.no_partitions()
    if refused:
        if "kernel refused" not in refused and os.environ.get("CI") == "true":
            pytest.fail(f"the partition test needs RabbitMQ nodes in network namespaces (run as root): {refused}")
        pytest.skip(f"RabbitMQ nodes cannot be cut off here: {refused}")
    system = stack.production
    victim = quorum_leader(cluster, "gridcase.dispatch.locate")
    survivor = next(n for n in (1, 2, 3) if n != victim)
    reports = steady(stack, "partition", seconds=40)
    cases = CaseCount(system, reports).start()
    try:
        wait_for(lambda: len(reports.accepted) > 5 * RATE, timeout=60, message="reports flowing")
        cluster.cut(victim)
        cut_at = time.monotonic()
        try:
            wait_for(lambda: len(cluster.rabbitmq_running(survivor)) == 2, timeout=60, interval=0.5,
                     message=f"the majority to see node {victim} gone")
            detected = time.monotonic() - cut_at
            wait_for(lambda: quorum_leader(cluster, "gridcase.dispatch.locate", ask=survivor) != victim, timeout=60,
                     interval=0.5, message="a leader elected in the majority")
            # the majority carries the load alone for a while
            flowing = len(reports.accepted)
            wait_for(lambda: len(reports.accepted) > flowing + 5 * RATE, timeout=90, message="reports flowing again")
        finally:
            cluster.heal(victim)
        healed_at = time.monotonic()
        wait_for(lambda: len(cluster.rabbitmq_running(survivor)) == 3, timeout=120, interval=0.5,
                 message=f"node {victim} back in the cluster")
        rejoined = time.monotonic() - healed_at
        accepted = reports.join()
    finally:
        stall = cases.stop()
    stack.accepted |= accepted
    assert len(accepted) == 40 * RATE
    assert_loop_invariants(system, stack.accepted)
    for n in (1, 2, 3):
        listed = cluster.rabbitmq_ctl(n, "eval", "rabbit_node_monitor:partitions().").strip()
        assert listed == "[]", f"node {n} still records a partition: {listed}"
    outages.append((f"RabbitMQ: node {victim} (quorum leader) cut off: pipeline stalled", stall))
    outages.append(("RabbitMQ: node cut off: intake write outage", reports.longest_silence()))
    outages.append(("... the majority saw the cut node gone after", detected))
    outages.append(("... healed, it was back in the cluster after", rejoined))


def storing_reports(engine) -> int:
    """How many sessions of intake's database wait for a lock in the middle of storing a report."""
    with engine.connect() as db:
        return db.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO reports%'")).scalar()


def test_the_postgresql_primary_killed_under_steady_load_loses_no_acknowledged_report(cluster, stack):
    """The primary dies while reports are in the middle of their transaction: the test holds a lock on
    ``reports`` that makes intake's inserts wait, sees both intake replicas waiting in ``pg_stat_activity``
    and kills the primary then (a moment seen, not guessed). The standby is promoted; those phones' retries
    with their Idempotency-Key give each report its case once."""
    system = stack.production
    primary = cluster.postgres_primary()
    assert primary is not None
    engine = make_engine(system.env["GRIDCASE_INTAKE_DATABASE_URL"])
    reports = steady(stack, "pg-kill", seconds=30)
    wait_for(lambda: len(reports.accepted) > 5 * RATE, timeout=60, message="reports flowing")
    lock = engine.connect()
    try:
        lock.execute(sa.text("LOCK TABLE reports IN SHARE ROW EXCLUSIVE MODE"))  # inserts wait, reads do not
        wait_for(lambda: storing_reports(engine) >= 2, timeout=30, interval=0.05,
                 message="both intake replicas in the middle of storing a report")
        with reports.lock:
            held = set(reports.in_flight)
        cluster.kill("postgres", primary)
    finally:
        lock.invalidate()  # gone with the primary; or, had the kill not come, the lock is let go
    try:
        accepted = reports.join()
        assert held and held <= set(accepted), "the reports in flight at the kill were accepted on a retry"
        stack.accepted |= accepted
        standby = 3 - primary
        assert cluster.postgres_primary() == standby, "the standby was promoted"
        assert len(accepted) == 30 * RATE, "every report was accepted in the end: clients found the new primary"
        assert reports.refused > 0, "the kill was felt"
        assert_loop_invariants(system, stack.accepted)
    finally:
        cluster.revive("postgres", primary)
        # It rejoins by pg_rewind or, failing that, a full base backup of every test's databases so far:
        # 2 minutes and more on the loaded 2-core CI machine.
        wait_for(lambda: cluster.postgres_standby_ready(primary), timeout=300, interval=1,
                 message=f"PostgreSQL node {primary} back as the standby")
    engine.dispose()
    outages.append((f"PostgreSQL: primary (node {primary}) SIGKILLed mid-transaction: intake write outage",
                    reports.longest_silence()))
