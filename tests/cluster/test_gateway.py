"""The HTTP edge as production runs it: nginx with deploy/nginx.conf in front of two replicas of every API
(gunicorn, ``gridcase serve``), with two workers of every service and two schedulers, on the cluster
(``topology.FullTopology``). One replica is SIGKILLed while it holds a report in the
middle of its database write (held there by a table lock the test takes, so the moment is certain, not a
matter of timing). The phone retries with its Idempotency-Key, as it does on a bad network: every report is
stored exactly once, no phone needs more than one retry, and the requests after the kill go to the other
replica without an error anyone sees."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
import sqlalchemy as sa

from harness.processes import wait_for
from shared.db import make_engine
from tests.cluster.conftest import outages
from tests.cluster.topology import FullTopology, assert_loop_invariants
from tests.support.system import a_point_in_grid, auth

#: the libpq application_name of the replica that is killed (PGAPPNAME), to see its requests in PostgreSQL
VICTIM = "gridcase-intake-victim"
HELD = 8  # reports sent while the table is locked
AFTER = 20  # reports sent after the kill


@dataclass
class Phone:
    """A report sent until it is 201, with one Idempotency-Key, retrying after 0.25 s on 502/503/504 or no
    answer (as the phone does on a bad network). ``tries``: (answer, monotonic time) for every attempt."""
    url: str
    headers: dict
    body: dict
    key: str
    tries: list[tuple[int | str, float]] = field(default_factory=list)
    report_id: str = ""

    def send(self, give_up_after: float = 90.0) -> Phone:
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            rid = f"{self.key}-{len(self.tries)}"
            try:
                response = requests.post(self.url, json=self.body, timeout=30, headers={
                    **self.headers, "Idempotency-Key": self.key, "X-Request-ID": rid})
                answer: int | str = response.status_code
            except requests.RequestException as exc:
                answer = type(exc).__name__
            self.tries.append((answer, time.monotonic()))
            if answer == 201:
                self.report_id = response.json()["id"]
                return self
            assert answer in (502, 503, 504) or isinstance(answer, str), f"{self.key}: {answer} {response.text}"
            time.sleep(0.25)
        raise AssertionError(f"{self.key}: no 201 within {give_up_after}s: {self.tries}")

    def request_ids(self) -> list[str]:
        return [f"{self.key}-{n}" for n in range(len(self.tries))]


@pytest.fixture
def edge(tmp_path, cluster):
    """gridcase scaled out (``topology.FullTopology``) with the connections of intake's second API replica
    named ``VICTIM``; yields (the stack, its gateway, intake's two replicas as host:port)."""
    topology = FullTopology(tmp_path, cluster.broker_url, cluster.databases(),
                            replica_env={"intake": {"PGAPPNAME": VICTIM}})
    try:
        topology.start()
        yield topology.production, topology.gateway, topology.replicas["intake"]
    finally:
        topology.stop()


def waiting_on_locks(engine) -> list[str]:
    """The application names of the sessions of intake's database waiting for a lock."""
    with engine.connect() as db:
        return list(db.execute(sa.text("SELECT application_name FROM pg_stat_activity WHERE datname = "
                                       "current_database() AND wait_event_type = 'Lock'")).scalars())


def test_an_api_replica_killed_mid_request_costs_a_phone_one_retry_and_stores_its_report_once(edge):
    system, gateway, (survivor, victim) = edge
    admin = system.token("admin")
    _, lon, lat = a_point_in_grid(system.urls["dispatch"], admin, index=9)
    url = f"{gateway.url}/intake/v1/reports"

    def phone(key: str) -> Phone:
        return Phone(url, auth(admin), {"category": "road_damage", "description": key,
                                         "location": {"lon": lon, "lat": lat}}, key)

    # both replicas serve through the gateway
    warm = [phone(f"warm-{i}").send() for i in range(6)]
    assert all(len(p.tries) == 1 for p in warm), [p.tries for p in warm]
    served = {gateway.upstreams(p.request_ids()[0])[-1] for p in warm}
    assert served == {survivor, victim}, f"nginx sent the reports to {served}"

    engine = make_engine(system.env["GRIDCASE_INTAKE_DATABASE_URL"])
    lock = engine.connect()
    try:
        # Inserts into reports wait while this is held; reads (the Idempotency-Key's lookup) do not.
        lock.execute(sa.text("LOCK TABLE reports IN SHARE ROW EXCLUSIVE MODE"))
        held = [phone(f"held-{i}") for i in range(HELD)]
        with ThreadPoolExecutor(HELD) as pool:
            sent = [pool.submit(p.send) for p in held]
            wait_for(lambda: VICTIM in waiting_on_locks(engine), timeout=30, interval=0.05,
                     message="the victim replica to wait in the middle of storing a report",
                     watch=system.processes, names=("serve-intake-2",))
            system.processes.kill("serve-intake-2")  # SIGKILL to its gunicorn master and worker
            killed_at = time.monotonic()
            lock.commit()  # the killed replica's statement, still waiting in PostgreSQL, may now run
            for future in sent:
                future.result()
    finally:
        lock.close()

    failed = [p for p in held if p.tries[0][0] != 201]
    assert failed, "the kill was felt by the phone whose report was in the middle of its write"
    assert all(len(p.tries) <= 2 for p in held), f"more than one retry: {[p.tries for p in held]}"
    for p in failed:
        assert gateway.upstreams(p.request_ids()[0])[-1] == victim, "the failed attempt was at the killed replica"
        assert gateway.upstreams(p.request_ids()[-1])[-1] == survivor, "the retry went to the other replica"

    # the next requests: every one answered 201 at once, by the surviving replica
    with ThreadPoolExecutor(4) as pool:
        after = list(pool.map(lambda i: phone(f"after-{i}").send(), range(AFTER)))
    assert all(len(p.tries) == 1 for p in after), [p.tries for p in after if len(p.tries) > 1]
    assert {gateway.upstreams(p.request_ids()[0])[-1] for p in after} == {survivor}

    accepted = {p.key: p.report_id for p in [*warm, *held, *after]}
    assert_loop_invariants(system, accepted)
    engine.dispose()

    retried_in = max(p.tries[-1][1] - p.tries[0][1] for p in failed)
    outages.append((f"API replica SIGKILLed mid-request: {len(failed)} phone(s) retried once, within", retried_in))
    assert min(p.tries[0][1] for p in after) > killed_at
