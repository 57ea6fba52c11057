"""Live-feed fan-out benchmark: thousands of command-center boards on two escalation replicas.

    python -m benchmarks --only fanout [--quick]

Set-up: escalation's database on PostgreSQL; two replicas of the escalation API (``gridcase serve
escalation --workers 1``: one gevent worker each, a connection budget of 5 + 10); B simulated boards (2,000;
quick 200) on loopback, half on each replica, each an open Server-Sent Events stream read through one
selector (``harness.boards``), reconnecting with ``Last-Event-ID`` when a stream ends (every 25 s), as a
browser does. Every board is a headquarters' (``command``): it sees every case, the most fan-out there is.

Then, for a window of W seconds (20; quick 8), cases are opened at R a second (4) straight through
escalation's use case (``handlers.open_cases``), each one event on every board. Figures:

- ``fanout.db_queries_per_s``: the escalation database's transactions a second in the window
  (``pg_stat_database``, every gridcase query runs in one), less the benchmark's own case openings, per
  API process (goal ≤ 10 per process whatever the number of screens). Raw baseline, same run: the same
  window with one board on each replica; ratio = many boards ÷ one board (≈ 1: the cost follows
  processes, not screens).
- ``fanout.event_delay_p50``/``p99``: from the commit of a case's opening to its event arriving on a board,
  over every (board, event) pair (goal p99 ≤ 2 s); ratio = the one-board run's p99 ÷ ours.
- ``fanout.memory_per_board``: the replicas' resident memory (master and worker) with every board connected
  less with one each, ÷ boards.
- ``fanout.missed``: (board, event) pairs never delivered by the end of the window plus 5 s (must be 0).
"""
from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from benchmarks._support import Figure, Scope, emit, note, percentile, require_env, sigterm_as_exit
from harness.boards import Boards
from harness.processes import GRIDCASE

SECRET = "fan-out-bench-" + "k" * 40
REPLICAS = 2


def run(quick: bool = False) -> list[Figure]:
    from services.escalation import bootstrap
    from shared.auth import issue_token
    from shared.config import Settings

    boards, window, rate = (200, 8.0, 4.0) if quick else (2_000, 20.0, 4.0)
    admin = require_env("GRIDCASE_TEST_POSTGRES_URL")
    with Scope("fanout") as scope:
        url = scope.database("escalation")
        database = sa.engine.make_url(url).database
        service = bootstrap.build(Settings(data_dir=scope.tmp, secret=SECRET, database_urls={"escalation": url}),
                                  web=False)
        scope.callback(service.engine.dispose)
        env = {"GRIDCASE_ESCALATION_DATABASE_URL": url, "GRIDCASE_SECRET": SECRET, "GRIDCASE_LOG_LEVEL": "WARNING"}
        bases = [scope.processes.serve(f"escalation-{n}", [*GRIDCASE, "serve", "escalation", "--workers", "1",
                                                           "--data-dir", str(scope.tmp)], env)
                 for n in range(REPLICAS)]
        for n, base in enumerate(bases):
            scope.processes.wait_ready(f"escalation-{n}", f"{base}/escalation/readyz", timeout=60)
        pids = [scope.processes.running[f"escalation-{n}"].pid for n in range(REPLICAS)]
        token = issue_token(SECRET, "command", user="bench")
        stats = _Stats(admin, database)

        ones = [Boards(base, [token], 1).open() for base in bases]  # one board on each replica
        try:
            time.sleep(1.0)
            rss_one = sum(_rss(pid) for pid in pids)
            one_rate, one_delays, one_missed = _window(service, ones, stats, window / 2, rate)
        finally:
            for one in ones:
                one.close()

        groups = [Boards(base, [token], boards // REPLICAS) for base in bases]
        started = time.monotonic()
        for group in groups:
            group.open(timeout=120)
        connected = sum(bool(b.received) for g in groups for b in g.boards)
        note(f"{connected} of {boards} boards connected in {time.monotonic() - started:.1f} s")
        try:
            time.sleep(1.0)
            rss_many = sum(_rss(pid) for pid in pids)
            many_rate, delays, missed = _window(service, groups, stats, window, rate)
            errors = [e for g in groups for e in g.errors]
        finally:
            for group in groups:
                group.close()
        reconnects = sum(b.connects - 1 for g in groups for b in g.boards)
    note(f"{len(delays)} deliveries, {reconnects} reconnects (streams end every 25 s), {len(errors)} socket errors")
    per_process = many_rate / REPLICAS
    p99 = percentile(delays, 99) if delays else float("nan")
    one_p99 = percentile(one_delays, 99) if one_delays else float("nan")
    return [
        ("fanout.db_queries_per_s", round(per_process, 2), "q/s/process",
         round(many_rate / one_rate, 2) if one_rate else None),
        ("fanout.db_queries_one_board", round(one_rate / REPLICAS, 2), "q/s/process", None),
        ("fanout.event_delay_p50", round(percentile(delays, 50), 3) if delays else "nan", "s", None),
        ("fanout.event_delay_p99", round(p99, 3), "s", round(one_p99 / p99, 2) if p99 else None),
        ("fanout.memory_per_board", round((rss_many - rss_one) / max(connected - REPLICAS, 1) / 1024, 1), "KiB",
         None),
        ("fanout.boards", connected, "boards", None),
        ("fanout.missed", missed + one_missed + (boards - connected), "deliveries", None),
    ]


class _Stats:
    """The escalation database's transaction count, read from the admin database."""

    def __init__(self, admin: str, database: str):
        self.engine = sa.create_engine(admin.replace("postgresql://", "postgresql+psycopg://", 1))
        self.database = database

    def transactions(self) -> int:
        with self.engine.connect() as db:
            return db.execute(sa.text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d"),
                              {"d": self.database}).scalar_one()


def _window(service, groups: list[Boards], stats: _Stats, seconds: float, rate: float):
    """Open cases at ``rate`` a second for ``seconds``; returns (the database's transactions a second less
    ours, every (board, event) delay in seconds, deliveries missed)."""
    from services.escalation import handlers
    from shared.messages import events
    from shared.owners import AreaRef, Owners
    from shared.vocabulary import Level

    owners = Owners(hq=AreaRef("HQ", "City"), station=AreaRef("S1", "Station"), grid=AreaRef("G1", "Grid"))
    time.sleep(1.5)  # busy backends flush their statistics every second
    before, began = stats.transactions(), time.monotonic()
    committed: dict[str, float] = {}
    ours = 0
    while time.monotonic() - began < seconds:
        case_id = str(uuid.uuid4())
        service.run(handlers.open_cases, [events.CaseDispatched(
            case_id=case_id, number=case_id[:8], category="street_light", severity="normal",
            reported_at=datetime.now(UTC), areas_version=1, start_level=Level.GRID, owners=owners)])
        committed[case_id] = time.monotonic()
        ours += 1
        time.sleep(max(0.0, began + ours / rate - time.monotonic()))
    elapsed = time.monotonic() - began
    queries = (stats.transactions() - before - ours) / elapsed
    deadline = time.monotonic() + 5
    expected = len(committed) * sum(len(g.boards) for g in groups)
    while time.monotonic() < deadline and _cases_received(groups) < expected:
        time.sleep(0.2)
    delays, count = _arrived(groups, committed)
    return queries, delays, expected - count


def _cases_received(groups: list[Boards]) -> int:
    total = 0
    for group in groups:
        with group.lock:
            total += sum(name == "case" for board in group.boards for name, *_ in board.received)
    return total


def _arrived(groups: list[Boards], committed: dict[str, float]) -> tuple[list[float], int]:
    import json

    delays = []
    for group in groups:
        with group.lock:
            for board in group.boards:
                for name, _, data, at in board.received:
                    if name == "case":
                        case_id = json.loads(data)["case"]["id"]
                        if case_id in committed:
                            delays.append(at - committed[case_id])
    return delays, len(delays)


def _rss(pid: int) -> int:
    """Resident bytes of a process and its children (a gunicorn master and its worker)."""
    total = 0
    for each in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found + [g for c in found for g in _children(c)]


if __name__ == "__main__":
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv))
