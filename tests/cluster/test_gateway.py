"""The HTTP edge as production runs it: nginx with deploy/nginx.conf in front of two replicas of every API
(gunicorn, ``gridcase serve``), with two workers of every service and two schedulers, on the cluster
(``topology.FullTopology``). One replica is SIGKILLed while it holds a report in the
middle of its database write (held there by a table lock the test takes, so the moment is certain, not a
matter of timing). The phone retries with its Idempotency-Key, as it does on a bad network: every report is
stored exactly once, no phone needs more than one retry, and the requests after the kill go to the other
replica without an error anyone sees."""
from __future__ import annotations

import threading
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
FEED = "/escalation/v1/cases/events"
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory, cluster):
    """gridcase scaled out (``topology.FullTopology``) with the connections of intake's second API replica
    named ``VICTIM``, shared by this module's tests; ``stack.accepted``: every report accepted so far."""
    topology = FullTopology(tmp_path_factory.mktemp("edge"), cluster.broker_url, cluster.databases(),
                            replica_env={"intake": {"PGAPPNAME": VICTIM}})
    try:
        topology.start()
        topology.accepted = {}
        yield topology
    finally:
        topology.stop()


@pytest.fixture
def edge(stack):
    """(the stack's processes, its gateway, intake's two replicas as host:port)."""
    return stack.production, stack.gateway, stack.replicas["intake"]


def waiting_on_locks(engine) -> list[str]:
    """The application names of the sessions of intake's database waiting for a lock."""
    with engine.connect() as db:
        return list(db.execute(sa.text("SELECT application_name FROM pg_stat_activity WHERE datname = "
                                       "current_database() AND wait_event_type = 'Lock'")).scalars())


def test_an_api_replica_killed_mid_request_costs_a_phone_one_retry_and_stores_its_report_once(stack, edge):
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

    stack.accepted |= {p.key: p.report_id for p in [*warm, *held, *after]}
    assert_loop_invariants(system, stack.accepted)
    engine.dispose()

    retried_in = max(p.tries[-1][1] - p.tries[0][1] for p in failed)
    outages.append((f"API replica SIGKILLed mid-request: {len(failed)} phone(s) retried once, within", retried_in))
    assert min(p.tries[0][1] for p in after) > killed_at


class Board:
    """A command center's board on the live feed (GET /escalation/v1/cases/events), as the page's
    EventSource does it: connected to ``first`` (one replica, directly: where the gateway happened to send
    it) and, after any end of its stream (the 25 s lifetime, or a replica that died), again at once with the
    id of the last event it received as Last-Event-ID — through ``gateway`` once ``moved`` is set.
    ``events``: (event id, whether its connection went through the gateway) of every ``case``/``removed``
    event received; ``times``: when each arrived (monotonic)."""

    def __init__(self, first: str, gateway: str, token: str):
        self.urls, self.token = (first, gateway), token
        self.events: list[tuple[int, bool]] = []
        self.moved = threading.Event()
        self.times: list[float] = []
        self.hello: int | None = None
        self.last: str | None = None
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Board:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(40)

    def _run(self) -> None:
        while not self.stopping.is_set():
            via_gateway = self.moved.is_set()
            url = self.urls[via_gateway] + FEED
            self.connections += 1
            headers = auth(self.token, Accept="text/event-stream",
                           **({"Last-Event-ID": self.last} if self.last else {}))
            try:
                with requests.get(url, headers=headers, stream=True, timeout=(5, 30)) as response:
                    if response.status_code != 200:
                        time.sleep(0.5)
                        continue
                    self._read(response, via_gateway)
            except requests.RequestException:
                time.sleep(0.2)  # EventSource waits its retry interval before reconnecting

    def _read(self, response, via_gateway: bool) -> None:
        current: dict = {}
        for line in response.iter_lines(chunk_size=None, decode_unicode=True):
            if self.stopping.is_set():
                return
            if line == "" and current:
                event, current = current, {}
                if event.get("event") == "hello" and self.hello is None:
                    self.hello = int(event["id"])
                elif event.get("event") in ("case", "removed"):
                    self.events.append((int(event["id"]), via_gateway))
                    self.times.append(time.monotonic())
                if "id" in event:
                    self.last = event["id"]
            elif line and not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = value


def test_a_board_on_an_escalation_replica_that_dies_reconnects_to_the_other_and_misses_no_event(stack):
    system, gateway = stack.production, stack.gateway
    admin = system.token("admin")
    _, lon, lat = a_point_in_grid(system.urls["dispatch"], admin, index=11)
    replica = f"http://{stack.replicas['escalation'][1]}"
    board = Board(replica, gateway.url, system.token("command")).start()
    try:
        wait_for(lambda: board.hello is not None, timeout=30, message="the board's hello")

        def report(key: str) -> None:
            answer = requests.post(f"{gateway.url}/intake/v1/reports", timeout=30, json={
                "category": "road_damage", "description": key, "location": {"lon": lon, "lat": lat}},
                headers=auth(admin, **{"Idempotency-Key": key}))
            assert answer.status_code == 201, answer.text
            stack.accepted[key] = answer.json()["id"]

        for i in range(5):
            report(f"board-before-{i}")
        wait_for(lambda: len(board.events) >= 5, timeout=60, message="the board seeing the first cases")
        board.moved.set()  # from now on the board's reconnections go through the gateway
        system.processes.kill("serve-escalation-2")  # the replica the board is connected to
        killed_at = time.monotonic()
        for i in range(10):
            report(f"board-after-{i}")
        assert_loop_invariants(system, stack.accepted)

        engine = make_engine(system.env["GRIDCASE_ESCALATION_DATABASE_URL"])
        with engine.connect() as db:
            rows = set(db.execute(sa.text("SELECT id FROM timeline WHERE id > :hello"),
                                  {"hello": board.hello}).scalars())
        engine.dispose()
        wait_for(lambda: rows <= {e for e, _ in board.events}, timeout=60,
                 message=f"the board to receive every timeline row after its hello ({len(rows)})")
    finally:
        board.stop()
    received = [e for e, _ in board.events]
    assert rows <= set(received), f"missed: {sorted(rows - set(received))[:10]}"
    assert board.connections >= 2 and board.events[-1][1], "the board reconnected through the gateway"
    first_again = min(t for t, (_, via_gateway) in zip(board.times, board.events, strict=True) if via_gateway)
    outages.append(("escalation replica SIGKILLed under a board: its next event after", first_again - killed_at))
