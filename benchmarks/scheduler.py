"""Scheduler benchmark: deadline → escalation lag and escalations/s on PostgreSQL with 10⁴ and 10⁶ open
cases, against a raw claim-and-clear of the same due rows in plain SQL.

    python -m benchmarks.scheduler [--quick]

Set-up, per size N (10,000 and 1,000,000; ``--quick`` 2,000 and 20,000): a fresh PostgreSQL database at
escalation's schema, and N open cases at level 1 whose deadlines are days away (not due), loaded with one
``INSERT … SELECT FROM generate_series`` (the same columns the store writes, a four-level city's owners
and the default policy; audit rows are not loaded: the chain starts empty). Then ``ANALYZE``.

Lag: D more cases (1,000; quick 300) get deadlines spread evenly over the next 5 s, and one scheduler
(``services.escalation.scheduler.Scheduler``, its default 0.2 s tick and 500-case batch, the real clock)
runs until every one of them has escalated. A case's lag = the ``case.escalated`` outbox row's
``created_at`` (written in the escalation's transaction) − the deadline it fired for (its
``scheduled_at``): deadline → escalation event durably written. Figures: p50 and p99 over the D cases.

Throughput: B cases (5,000; quick 1,000) all due at once, and the scheduler fires them;
escalations/s = B ÷ (last event − first event). Raw baseline, same database, same run: B more due rows
claimed 500 at a time with ``SELECT … FOR UPDATE SKIP LOCKED`` and cleared (``UPDATE … SET due_at =
NULL``), one transaction per batch, as fast as possible. Ratio = escalations/s ÷ raw rows/s.

The growth figure ``scheduler.lag_p99_growth`` = p99 lag at the largest N ÷ p99 lag at the smallest
(goal ≤ 1.5: the scheduler's cost follows what is due, not what is open).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from benchmarks._support import Figure, Scope, emit, note, percentile, sigterm_as_exit

AREAS = {"grid": {"id": "G0001", "name": "grid 1"}, "station": {"id": "S01", "name": "station 1"},
         "subcenter": {"id": "C1", "name": "sub-center 1"}, "hq": {"id": "HQ", "name": "city"}}
POLICY = {"1": 4.0, "2": 8.0, "3": 24.0, "4": 48.0}


def run(quick: bool = False) -> list[Figure]:
    sizes = (2_000, 20_000) if quick else (10_000, 1_000_000)
    lag_cases, burst = (300, 1_000) if quick else (1_000, 5_000)
    figures, p99 = [], {}
    for size in sizes:
        with Scope("scheduler") as scope:
            size_figures, p99[size] = _one_size(scope, size, lag_cases, burst)
            figures += size_figures
    growth = p99[sizes[-1]] / p99[sizes[0]] if p99[sizes[0]] else None
    figures.append(("scheduler.lag_p99_growth", round(growth, 2) if growth else None, "x", None))
    return figures


def _one_size(scope: Scope, size: int, lag_cases: int, burst: int) -> tuple[list[Figure], float]:
    from services.escalation import bootstrap
    from shared.config import Settings

    service = bootstrap.build(Settings(database_urls={"escalation": scope.database("escalation")}, secret="bench"),
                              web=False)
    scope.callback(service.engine.dispose)
    now = datetime.now(UTC)
    started = time.perf_counter()
    _load(service.engine, "idle", size, now + timedelta(days=3), timedelta(0))
    note(f"{size:,} open cases loaded in {time.perf_counter() - started:.1f} s (one INSERT … SELECT; not timed)")

    first = datetime.now(UTC) + timedelta(seconds=1)
    _load(service.engine, "lag", lag_cases, first, timedelta(seconds=5) / lag_cases)
    lags = _run_scheduler(service, "lag", lag_cases)
    lag_p50, lag_p99 = percentile(lags, 50), percentile(lags, 99)
    note(f"{size:,} open: lag over {lag_cases} deadlines in 5 s: p50 {lag_p50 * 1000:.0f} ms, "
         f"p99 {lag_p99 * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms, min {min(lags) * 1000:.0f} ms")

    _load(service.engine, "burst", burst, datetime.now(UTC) + timedelta(seconds=1), timedelta(0))
    fired = _run_scheduler(service, "burst", burst, spread=True)
    rate = burst / fired
    _load(service.engine, "raw", burst, datetime.now(UTC) - timedelta(seconds=1), timedelta(0))
    raw = burst / _raw_claim(service.engine, burst)
    note(f"{size:,} open: {burst} due at once fired in {fired:.2f} s; raw claim-and-clear {raw:,.0f} rows/s")
    label = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M"
    return [(f"scheduler.lag_p50_{label}", round(lag_p50 * 1000, 1), "ms", None),
            (f"scheduler.lag_p99_{label}", round(lag_p99 * 1000, 1), "ms", None),
            (f"scheduler.raw_claim_{label}", round(raw), "rows/s", None),
            (f"scheduler.escalations_{label}", round(rate), "cases/s", round(rate / raw, 3))], lag_p99


def _load(engine: sa.Engine, prefix: str, n: int, first: datetime, step: timedelta) -> None:
    """``n`` open level-1 cases ``{prefix}-{i}`` due at ``first + i × step``, in one statement."""
    with engine.begin() as db:
        db.execute(sa.text("""
            INSERT INTO cases (id, number, category, severity, status, level, owner_area_id, grid_id, station_id,
                               subcenter_id, hq_id, areas, policy, overdue, verification_overdue, triage, reworks,
                               timer_token, revision, opened_at, deadline_at, due_at, updated_at)
            SELECT :prefix || '-' || i, i::text, 'street_light', 'normal', 'open', 1, 'G0001', 'G0001', 'S01', 'C1',
                   'HQ', CAST(:areas AS json), CAST(:policy AS json), false, false, false, 0, 1, 1, :now,
                   :first + i * :step, :first + i * :step, :now
            FROM generate_series(0, :n - 1) AS i"""),
            {"prefix": prefix, "areas": json.dumps(AREAS), "policy": json.dumps(POLICY), "now": datetime.now(UTC),
             "first": first, "step": step, "n": n})
        db.execute(sa.text("ANALYZE cases"))


def _run_scheduler(service, prefix: str, n: int, *, spread: bool = False):
    """Run one scheduler until the ``n`` cases ``{prefix}-*`` escalated; the lags (s), or with ``spread``
    the seconds between the first and the last escalation event."""
    from services.escalation.scheduler import Scheduler

    scheduler = Scheduler(service)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    query = sa.text("SELECT created_at, body FROM outbox WHERE type = 'case.escalated' AND body LIKE :like")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            with service.engine.connect() as db:
                done = db.execute(sa.text("SELECT count(*) FROM escalations WHERE case_id LIKE :like"),
                                  {"like": f"{prefix}-%"}).scalar()
            if done >= n:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"only {done} of {n} {prefix} cases escalated in 120 s")
    finally:
        scheduler.stop()
        thread.join(10)
    with service.engine.connect() as db:
        rows = db.execute(query, {"like": f'%"case_id":"{prefix}-%'}).all()
    events = [(r.created_at, json.loads(r.body)["payload"]["scheduled_at"]) for r in rows]
    if spread:
        times = sorted(created for created, _ in events)
        return (times[-1] - times[0]).total_seconds()
    from shared.clock import parse_time

    return [(created - parse_time(scheduled)).total_seconds() for created, scheduled in events]


def _raw_claim(engine: sa.Engine, n: int) -> float:
    """Claim and clear ``n`` due rows 500 at a time in plain SQL; the seconds it took."""
    claim = sa.text("SELECT id FROM cases WHERE due_at IS NOT NULL AND due_at <= now() ORDER BY due_at "
                    "LIMIT 500 FOR UPDATE SKIP LOCKED")
    clear = sa.text("UPDATE cases SET due_at = NULL WHERE id = ANY(:ids)")
    cleared, started = 0, time.perf_counter()
    while cleared < n:
        with engine.begin() as db:
            ids = db.execute(claim).scalars().all()
            if not ids:
                break
            db.execute(clear, {"ids": ids})
            cleared += len(ids)
    return time.perf_counter() - started


def main() -> None:
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
