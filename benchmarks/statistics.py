"""Statistics benchmark: ``GET /escalation/v1/stats/closure-times`` over 10⁶ closed cases on PostgreSQL,
a year grouped by station (the query behind the endpoint: ``CaseStore.closure_stats``), against a raw
scan of the same rows.

    python -m benchmarks.statistics [--quick]

Set-up (not timed): a fresh PostgreSQL database at escalation's schema; N closed cases (1,000,000;
``--quick`` 50,000) spread evenly over the 365 local days of 2026, over 138 stations of 4 grids each
(Berlin's number of stations) and 8 categories, each with its statistics row (``case_facts``) as the
store writes it: random durations, about 10 % reworked, 8 % extended, 15 % escalated; loaded with one
``INSERT … SELECT FROM generate_series`` per table, then ``ANALYZE``.

Then the rollups (``services/escalation/rollups.py``) are built from those rows as ``gridcase stats
rebuild`` builds them (every (day, sub-center) marked, one refresh; timed apart, as a note).

Figures (the median of 3 runs, after one warm-up run), through ``CaseStore.closure_stats`` (the rollups
refreshed first: nothing is marked, so that is one indexed look-up):

- ``statistics.year_by_station_month``: a command-center caller's whole year grouped by station and month
  (138 × 12 rows: counts, six rates, three durations, the response time and four levels, each median and
  p90, exact). Goal ≤ 0.25 s. Ratio: the raw baseline's seconds ÷ ours.
- ``statistics.year_by_station_day``: the same by station and day (138 × 365 rows), the heaviest grouping.
  Goal ≤ 1 s.
- ``statistics.raw_scan``: raw baseline: ``SELECT station_id, count(*), avg(close_s) … GROUP BY
  station_id`` over the same year's rows, plain SQL: what reading the rows costs at all.
- ``statistics.station_scope``: one station's own year by month (a scoped caller).
- ``statistics.from_cases_station_month`` / ``_station_day``: the same two answers computed from the per-case
  rows (``CaseStore._closure_stats``, ``percentile_cont`` over 10⁶ rows: what every read cost before the
  rollups); ratio: that ÷ ours.
- ``statistics.refresh_month``: what keeping the rollups current costs: 1,000 cases of one month change
  (their statistics rows rewritten through the store, marking their days), then one refresh recomputes
  their days, weeks and month under their sub-centers. Seconds for the refresh; ratio: per changed case, ms.
"""
from __future__ import annotations

import statistics as stdlib_statistics
import sys
import time
from datetime import UTC, date, datetime

import sqlalchemy as sa

from benchmarks._support import Figure, Scope, emit, note, sigterm_as_exit

STATIONS, GRIDS_PER_STATION = 138, 4
CATEGORIES = ("street_light", "manhole_cover", "road_damage", "illegal_dumping", "fire_lane_blocked",
              "neighbour_dispute", "safety_hazard", "other")
YEAR = (date(2026, 1, 1), date(2027, 1, 1))


def run(quick: bool = False) -> list[Figure]:
    size = 50_000 if quick else 1_000_000
    with Scope("statistics") as scope:
        from services.escalation import bootstrap, handlers
        from shared.auth import Identity
        from shared.config import Settings

        service = bootstrap.build(Settings(database_urls={"escalation": scope.database("escalation")},
                                           secret="bench"), web=False)
        scope.callback(service.engine.dispose)
        started = time.perf_counter()
        _load(service.engine, size)
        note(f"{size:,} closed cases with their statistics rows loaded in {time.perf_counter() - started:.1f} s "
             "(two INSERT … SELECT; not timed)")
        started = time.perf_counter()
        marks = service.run(handlers.refresh_rollups, True)
        note(f"rollups built in {time.perf_counter() - started:.1f} s ({marks:,} (day, sub-center) pairs; "
             "gridcase stats rebuild's refresh; not timed)")
        command = Identity(role="command", user="bench")
        station = Identity(role="station", user="bench", area="S001")

        def ours(identity, period):
            with service.uow() as uow:
                return uow.store.closure_stats(identity, "station", period, *YEAR)

        def from_cases(period):
            with service.uow() as uow:
                return uow.store._closure_stats(command, "station", period, *YEAR)

        month, rows = _timed(lambda: ours(command, "month"))
        note(f"year by station and month: {len(rows)} rows, {sum(r['opened'] for r in rows):,} cases")
        before_month, same = _timed(lambda: from_cases("month"), runs=1)
        if same != rows:
            raise AssertionError("the rollups' answer differs from the per-case rows' (station, month)")
        day, rows = _timed(lambda: ours(command, "day"))
        note(f"year by station and day: {len(rows)} rows")
        before_day, same = _timed(lambda: from_cases("day"), runs=1)
        if same != rows:
            raise AssertionError("the rollups' answer differs from the per-case rows' (station, day)")
        note("both answers equal the per-case rows' computation, row for row")
        scoped, rows = _timed(lambda: ours(station, "month"))
        note(f"one station's year by month: {len(rows)} rows")
        raw, _ = _timed(lambda: _raw(service.engine))
        refresh, changed = _refresh_month(service)
        note(f"refresh: {changed:,} changed cases of 2026-06 over {STATIONS} stations, recomputed in {refresh:.2f} s")
    return [("statistics.raw_scan", round(raw, 3), "s", None),
            ("statistics.year_by_station_month", round(month, 3), "s", round(raw / month, 3)),
            ("statistics.year_by_station_day", round(day, 3), "s", round(raw / day, 3)),
            ("statistics.station_scope", round(scoped, 4), "s", round(raw / scoped, 3)),
            ("statistics.from_cases_station_month", round(before_month, 3), "s", round(before_month / month, 1)),
            ("statistics.from_cases_station_day", round(before_day, 3), "s", round(before_day / day, 1)),
            ("statistics.refresh_month", round(refresh, 3), "s", round(refresh / changed * 1000, 3))]


def _refresh_month(service, n: int = 1000) -> tuple[float, int]:
    """``n`` cases opened in June 2026 change (their statistics rows rewritten and their days marked, as a
    step's transaction does it); returns the seconds of the refresh that follows, and ``n``."""
    from services.escalation import handlers
    from services.escalation.store import case_facts

    f = case_facts.c
    with service.uow() as uow:
        rows = [dict(r._mapping) for r in uow.connection.execute(
            sa.select(case_facts).where(f.opened_month == date(2026, 6, 1)).limit(n))]
        for row in rows:
            row["close_s"] = (row["close_s"] or 0) + 60
        uow.connection.execute(case_facts.delete().where(f.case_id.in_([r["case_id"] for r in rows])))
        uow.connection.execute(case_facts.insert(), rows)
        uow.store.rollups.mark([(r["opened_day"], r["subcenter_id"]) for r in rows], datetime.now(UTC))
        uow.commit()
    started = time.perf_counter()
    service.run(handlers.refresh_rollups, False)
    return time.perf_counter() - started, len(rows)


def _timed(fn, runs: int = 3):
    result = fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return stdlib_statistics.median(times), result


def _raw(engine: sa.Engine):
    with engine.connect() as db:
        return db.execute(sa.text(
            "SELECT station_id, count(*), sum(closed), avg(close_s) FROM case_facts "
            "WHERE opened_day >= :a AND opened_day < :b GROUP BY station_id"), {"a": YEAR[0], "b": YEAR[1]}).all()


def _load(engine: sa.Engine, n: int) -> None:
    """``n`` closed cases ``bench-{i}`` and their statistics rows, opened evenly over 2026."""
    with engine.begin() as db:
        db.execute(sa.text("""
            INSERT INTO cases (id, number, category, severity, status, level, owner_area_id, grid_id, station_id,
                               subcenter_id, hq_id, areas, policy, overdue, verification_overdue, triage, reworks,
                               timer_token, revision, opened_at, updated_at)
            SELECT 'bench-' || i, i::text, (CAST(:categories AS text[]))[1 + i % 8], 'normal', 'closed', 1,
                   'S' || lpad((i % :stations)::text, 3, '0'),
                   'S' || lpad((i % :stations)::text, 3, '0') || '-G' || (i / :stations) % :grids,
                   'S' || lpad((i % :stations)::text, 3, '0'), 'C' || (i % :stations) % 12, 'HQ',
                   '{}'::json, '{}'::json, false, false, false, 0, 1, 1,
                   timestamptz '2026-01-01 00:00+08' + (i::float8 / :n) * interval '365 days', now()
            FROM generate_series(0, :n - 1) AS i"""),
            {"n": n, "stations": STATIONS, "grids": GRIDS_PER_STATION, "categories": list(CATEGORIES)})
        db.execute(sa.text("""
            INSERT INTO case_facts (case_id, category, severity, reporter, grid_id, station_id, subcenter_id,
                                    opened_at, opened_day, opened_week, opened_month, closed_at, closed, escalated,
                                    extended, reworked, overdue, on_time, on_time_ext, ack_s, resolve_s, close_s,
                                    level1_s, level2_s, level3_s, level4_s)
            SELECT c.id, c.category, c.severity, 'reporter-' || (h % 2000), c.grid_id, c.station_id, c.subcenter_id,
                   c.opened_at, d, date_trunc('week', d)::date, date_trunc('month', d)::date,
                   c.opened_at + (3600 + h % 400000) * interval '1 second', 1,
                   (h % 100 < 15)::int, (h % 100 < 8)::int, (h % 10 = 0)::int, (h % 100 < 12)::int,
                   (h % 100 >= 20)::int, (h % 100 >= 12)::int,
                   60 + h % 7200, 1800 + h % 200000, 3600 + h % 400000,
                   1800 + h % 30000, CASE WHEN h % 100 < 15 THEN 600 + h % 50000 END, NULL, NULL
            FROM (SELECT *, (opened_at AT TIME ZONE 'Asia/Shanghai')::date AS d,
                         abs(hashtext(id)) AS h FROM cases WHERE id LIKE 'bench-%') AS c"""))
        db.execute(sa.text("ANALYZE cases"))
        db.execute(sa.text("ANALYZE case_facts"))


def main() -> None:
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
