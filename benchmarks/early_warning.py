"""Early-warning benchmark: what evaluating the rules costs per report as cases open, with 10³ and 10⁵
recent reports already in the window, on PostgreSQL and SQLite — against the raw cost of the same index
lookups in plain SQL, and beside the full scan that the index avoids.

    python -m benchmarks.early_warning [--quick]

Set-up, per store and size N (10³ and 10⁵; ``--quick`` 10³ and 10⁴), not timed: a fresh database at
escalation's schema and N street-light points of the shipped cluster rule (5 within 200 m in 24 hours)
reported over the last 23 hours, spread uniformly over a square city whose area grows with N (10 reports
per km²: 100 km² for 10³, 10,000 km² for 10⁵), so that the neighbourhood of a new report holds about the
same number of points at every size and only the stored total changes. Each point also has its grid's
point for the shipped recurring rule (grids of 300 m × 300 m, "a few streets", so about one report a
grid: the recurring rule seldom fires). Then ``ANALYZE``, and 50 reports evaluated as a warm-up.

Figures, per store and size (M new reports at random places in the city, M = 1,000; quick 300):

- ``early_warning.per_report_<store>_<N>``: µs per report through ``early_warnings.evaluate`` (both rules:
  the locks, a point per rule, its neighbourhood, the decision, any item opened or joined with its audit
  row, the pruning), one unit of work and commit per report (the worst case: the consumer batches).
  Ratio: the raw baseline's µs ÷ ours. Measured in 10 rounds, each M/10 reports of ours then M/10 of the
  raw baseline, so that the shared machine's noise falls on both; the figures are the rounds' medians.
  After each round its points and items are removed (not timed), so that every round meets the loaded
  density plus its own reports (at N = 10³, M/10 reports add a tenth to the density: more clusters).
- ``early_warning.raw_<store>_<N>``: raw baseline: per report, in one transaction, a plain INSERT of the
  point and the indexed SELECT of its 3 × 3 cells (the least any incremental evaluation does).
- ``early_warning.full_scan_<store>_<N>``: what a rule without the index would cost: per report, SELECT
  every point of the rule in the window and measure its distance in Python (50 reports; quick 20).
- ``early_warning.growth_<store>``: per-report cost at the largest N ÷ at the smallest (goal ≤ 1.5: the
  cost follows the neighbourhood, not what is stored); its ratio is the same growth measured against the
  raw baseline (the smallest N's ratio ÷ the largest's: 1.0 when ours grows no more than the raw lookup).
"""
from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from benchmarks._support import Figure, Scope, emit, note, sigterm_as_exit

DENSITY_PER_KM2 = 10
ROUNDS = 10
CENTRE = (121.0, 31.0)


def run(quick: bool = False) -> list[Figure]:
    sizes = (1_000, 10_000) if quick else (1_000, 100_000)
    reports, scans = (300, 20) if quick else (1_000, 50)
    figures = []
    for store in ("postgres", "sqlite"):
        cost = {}
        for size in sizes:
            with Scope("early_warning") as scope:
                url = scope.database("escalation") if store == "postgres" else \
                    f"sqlite:///{tempfile.mkdtemp(dir=scope.tmp)}/escalation.db"
                size_figures, cost[size] = _one_size(scope, store, url, size, reports, scans)
                figures += size_figures
        (small, small_ratio), (large, large_ratio) = cost[sizes[0]], cost[sizes[-1]]
        figures.append((f"early_warning.growth_{store}", round(large / small, 2), "x",
                        round(small_ratio / large_ratio, 2)))
    return figures


def _label(size: int) -> str:
    return f"{size // 1000}k"


def _one_size(scope: Scope, store: str, url: str, size: int, reports: int,
              scans: int) -> tuple[list[Figure], tuple[float, float]]:
    from services.escalation import bootstrap, early_warnings
    from shared.clock import FakeClock
    from shared.config import Settings

    clock = FakeClock(datetime.now(UTC))
    service = bootstrap.build(Settings(database_urls={"escalation": url}, secret="bench"), clock, web=False)
    scope.callback(service.engine.dispose)
    policy = service.dependencies["policy"]
    [rule] = [r for r in policy.warning_rules("street_light") if r.kind == "cluster"]
    side_km = math.sqrt(size / DENSITY_PER_KM2)
    rng = random.Random(size)
    now = clock.now()
    started = time.perf_counter()
    _load(service.engine, rule, side_km, size, now, rng)
    note(f"{store} {size:,}: points loaded over {side_km:.0f} km × {side_km:.0f} km in "
         f"{time.perf_counter() - started:.1f} s (not timed)")

    def evaluate(arrivals) -> int:
        opened = 0
        for arrival in arrivals:
            with service.uow() as uow:
                opened += len(early_warnings.evaluate(uow, policy, [arrival], now))
                uow.commit()
        return opened

    evaluate([_arrival(f"warm-{n}", side_km, now, rng) for n in range(50)])
    opened, rounds = 0, []
    for r in range(ROUNDS):  # ours and raw interleaved, so that the machine's noise falls on both
        arrivals = [_arrival(f"new-{r}-{n}", side_km, now, rng) for n in range(reports // ROUNDS)]
        started = time.perf_counter()
        opened += evaluate(arrivals)
        ours = (time.perf_counter() - started) / len(arrivals) * 1e6
        raw = _raw(service.engine, rule, [_arrival(f"raw-{r}-{n}", side_km, now, rng) for n in range(len(arrivals))])
        rounds.append((ours, raw))
        _reset(service.engine)
    ours = statistics.median(o for o, _ in rounds)
    raw = statistics.median(r for _, r in rounds)
    ratio = statistics.median(r / o for o, r in rounds)
    scan = _full_scan(service.engine, rule, [_arrival(f"scan-{n}", side_km, now, rng) for n in range(scans)], now)
    note(f"{store} {size:,}: {reports} reports evaluated in {ROUNDS} rounds, {opened} items opened in all; per report "
         f"ours {ours:.0f} µs, raw {raw:.0f} µs (medians of the rounds), full scan {scan:.0f} µs")
    return [(f"early_warning.raw_{store}_{_label(size)}", round(raw), "us/report", None),
            (f"early_warning.per_report_{store}_{_label(size)}", round(ours), "us/report", round(ratio, 3)),
            (f"early_warning.full_scan_{store}_{_label(size)}", round(scan), "us/report", None)], (ours, ratio)


def _place(side_km: float, rng: random.Random) -> tuple[float, float]:
    """A uniform point in the square city (degrees)."""
    lat = CENTRE[1] + (rng.random() - 0.5) * side_km / 111.195
    lon = CENTRE[0] + (rng.random() - 0.5) * side_km / (111.195 * math.cos(math.radians(CENTRE[1])))
    return lon, lat


def _grid(lon: float, lat: float) -> str:
    """The id of a 300 m × 300 m grid, for the recurring rule."""
    km = 0.3
    return f"G{math.floor(lat * 111.195 / km)}:{math.floor(lon * 111.195 * math.cos(math.radians(CENTRE[1])) / km)}"


def _arrival(case_id: str, side_km: float, now: datetime, rng: random.Random):
    from services.escalation.early_warnings import Arrival
    from shared.owners import AreaRef, Owners

    lon, lat = _place(side_km, rng)
    owners = Owners(grid=AreaRef(_grid(lon, lat)), station=AreaRef("S1"), subcenter=AreaRef("C1"), hq=AreaRef("HQ"))
    return Arrival(case_id, "street_light", now, owners, lon, lat)


def _load(engine: sa.Engine, rule, side_km: float, size: int, now: datetime, rng: random.Random) -> None:
    from services.escalation.domain.early_warnings import cell
    from services.escalation.store import warning_points

    rows = []
    for n in range(size):
        lon, lat = _place(side_km, rng)
        at = now - timedelta(seconds=rng.random() * 23 * 3600)
        common = {"category": "street_light", "case_id": f"old-{n}", "at": at, "lon": lon, "lat": lat,
                  "item_id": None, "held": False}
        rows.append({**common, "rule": rule.name, "cell": cell(lon, lat, rule.radius_m)})
        rows.append({**common, "rule": "facilities_recurring", "cell": _grid(lon, lat)})
    with engine.begin() as db:
        for chunk in range(0, len(rows), 20_000):
            db.execute(warning_points.insert(), rows[chunk:chunk + 20_000])
    with engine.begin() as db:
        db.execute(sa.text("ANALYZE warning_points" if engine.dialect.name == "postgresql" else "ANALYZE"))


def _reset(engine: sa.Engine) -> None:
    """Back to the loaded points alone: a round's new points and items are removed (not timed), so the
    density a round sees is the loaded one plus its own reports only."""
    from services.escalation.store import warning_items, warning_points, warning_reports

    with engine.begin() as db:
        db.execute(warning_points.delete().where(sa.not_(warning_points.c.case_id.like("old-%"))))
        db.execute(warning_points.update().where(warning_points.c.item_id.is_not(None)).values(item_id=None,
                                                                                              held=False))
        db.execute(warning_reports.delete())
        db.execute(warning_items.delete())


def _raw(engine: sa.Engine, rule, arrivals) -> float:
    """µs per report: INSERT the point, SELECT its 3 × 3 cells, one transaction each."""
    from services.escalation.domain.early_warnings import cell, cells_near
    from services.escalation.store import warning_points

    p = warning_points.c
    started = time.perf_counter()
    for a in arrivals:
        with engine.begin() as db:
            db.execute(warning_points.insert(), {"rule": rule.name, "category": "street_light",
                                                 "cell": cell(a.lon, a.lat, rule.radius_m), "case_id": a.case_id,
                                                 "at": a.at, "lon": a.lon, "lat": a.lat, "held": False})
            db.execute(sa.select(p.id, p.lon, p.lat, p.at).where(
                p.rule == rule.name, p.category == "street_light",
                p.cell.in_(cells_near(a.lon, a.lat, rule.radius_m, rule.radius_m)),
                p.at >= a.at - timedelta(seconds=rule.window))).all()
    return (time.perf_counter() - started) / len(arrivals) * 1e6


def _full_scan(engine: sa.Engine, rule, arrivals, now: datetime) -> float:
    """µs per report without the index: every point of the rule in the window, distances in Python."""
    from services.escalation.domain.early_warnings import distance_m
    from services.escalation.store import warning_points

    p = warning_points.c
    started = time.perf_counter()
    for a in arrivals:
        with engine.connect() as db:
            points = db.execute(sa.select(p.lon, p.lat).where(
                p.rule == rule.name, p.at >= now - timedelta(seconds=rule.window))).all()
        sum(1 for lon, lat in points if distance_m(a.lon, a.lat, lon, lat) <= rule.radius_m)
    return (time.perf_counter() - started) / len(arrivals) * 1e6


def main() -> None:
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()

