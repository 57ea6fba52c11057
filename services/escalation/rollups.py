"""Closure-time statistics from rollups: one row per period (a local day, week from Monday or month) and
unit (grid, station, sub-center) with the counts and the exact quantiles of the cases that opened in it,
so that a year by station and month reads 138 × 12 rows instead of every case's statistics row.

**Kept current.** Each change to a case's statistics row (``store.case_facts``, rewritten with every
step) marks the case's (local opening day, sub-center) in ``rollup_marks``, in the step's own transaction
(``mark``; the old row's pair too, for a case moved to another sub-center). ``refresh`` takes the marks
and recomputes, from the statistics rows, every rollup row of the day, week and month of each marked day
under its sub-center (its grids, its stations and itself): the quantiles of a period need every value in
it, so a changed case costs the recomputation of its periods' groups, done once for many changes. The
statistics endpoint refreshes before it reads (an answer is never stale) and the scheduler every
``REFRESH_SECONDS``, so that little is left for a reader to do.

A writer's mark is an upsert that holds the mark's row until the writer commits, and ``refresh`` deletes
the marks it takes before it reads the statistics rows: a refresh that meets a mark of an uncommitted
change waits for that commit and then sees the change, and a mark written after the delete stays for the
next refresh. Refreshes take turns (an advisory lock on PostgreSQL; SQLite admits one writer anyway).

**Exact.** On PostgreSQL the rows are computed with ``percentile_cont`` over ``GROUPING SETS``; on SQLite
with the same interpolation in Python (``domain.statistics.quantile``): the values the per-case rows give.

**Read.** ``read`` answers a grouping by grid, station or sub-center for whole periods from the rows of
the finer of the grouping's and the caller's area level, filtered to the caller's area. It gives up
(None: the caller reads the per-case rows) where one group of the answer spans several rollup rows: a
unit that moved to another parent while cases of the period were open keeps both parents' rows.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.escalation.domain import statistics
from services.escalation.domain.measures import month_start, week_start
from services.escalation.store import CaseStore, case_facts, closure_rollups, rollup_marks
from shared.auth import Identity
from shared.runtime import collector_paused
from shared.vocabulary import ROLE_SCOPE, Role

PERIODS = ("day", "week", "month")
#: The unit levels of the rollups, finest first.
LEVELS = ("grid", "station", "subcenter")
#: The quantiled facts columns (seconds): the statistics' own list, so that a rollup carries every quantile
#: a per-case row gives.
QUANTILED = statistics.QUANTILED
#: Real seconds between the scheduler's refreshes.
REFRESH_SECONDS = 60.0
_LOCK = zlib.crc32(b"gridcase-closure-rollups")


def period_start(period: str, day: date) -> date:
    """The first local date of the ``period`` (day, week, month) that holds ``day``."""
    return {"day": day, "week": week_start(day), "month": month_start(day)}[period]


def next_start(period: str, start: date) -> date:
    """The first local date of the period after the one starting at ``start``."""
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def full_periods(period: str, day_from: date, day_to: date) -> tuple[date, date] | None:
    """``(first, end)``: the periods wholly inside ``[day_from, day_to)`` start at ``first`` and end at
    ``end``; None when no period fits. ``[day_from, first)`` and ``[end, day_to)`` are the partial edges."""
    first = period_start(period, day_from)
    if first < day_from:
        first = next_start(period, first)
    end = period_start(period, day_to)
    return (first, end) if first < end else None


class RollupStore:
    """The rollups' SQL, in the case store's transaction (``uow.store.rollups``)."""

    def __init__(self, store: CaseStore):
        self.store = store

    @property
    def db(self) -> sa.Connection:
        return self.store.db

    # -- marks -------------------------------------------------------------------------------------

    def mark(self, pairs: Iterable[tuple[date, str | None]], now: datetime) -> None:
        """Mark (local opening day, sub-center id or None) pairs whose statistics rows changed. The upsert
        holds each mark's row until this transaction ends (see the module's docstring)."""
        rows = [{"opened_day": day, "subcenter_id": subcenter or "", "marked_at": now}
                for day, subcenter in sorted({(day, subcenter or "") for day, subcenter in pairs})]
        if not rows:
            return
        insert = (postgresql if self.store.postgres else sqlite).insert(rollup_marks)
        self.db.execute(insert.on_conflict_do_update(index_elements=["opened_day", "subcenter_id"],
                                                     set_={"marked_at": insert.excluded.marked_at}), rows)

    def mark_all(self, now: datetime) -> int:
        """Mark every (day, sub-center) that has statistics rows (a rebuild); returns how many pairs."""
        pairs = self.db.execute(sa.select(case_facts.c.opened_day, case_facts.c.subcenter_id).distinct()).all()
        self.mark(pairs, now)
        return len(pairs)

    # -- refresh -----------------------------------------------------------------------------------

    def refresh(self) -> int:
        """Recompute the rollup rows of every marked pair's day, week and month under its sub-center,
        and remove the marks; returns how many marks were taken (0: nothing to do, nothing locked)."""
        if self.db.execute(sa.select(rollup_marks.c.opened_day).limit(1)).first() is None:
            return 0
        if self.store.postgres:
            self.db.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        taken = self.db.execute(rollup_marks.delete().returning(rollup_marks.c.opened_day,
                                                               rollup_marks.c.subcenter_id)).all()
        for period in PERIODS:
            groups = sorted({(period_start(period, day), subcenter) for day, subcenter in taken})
            if not groups:
                continue
            r = closure_rollups.c
            for chunk in range(0, len(groups), 500):
                part = groups[chunk:chunk + 500]
                self.db.execute(closure_rollups.delete().where(
                    r.period == period, sa.tuple_(r.period_start, r.subcenter_id).in_(part)))
            if self.store.postgres:
                self._compute_in_sql(period, groups)
            else:
                self._compute_in_python(period, groups)
        return len(taken)

    def _bounds(self, period: str, groups: list[tuple[date, str]]) -> tuple[date, date]:
        return min(start for start, _ in groups), next_start(period, max(start for start, _ in groups))

    def _compute_in_sql(self, period: str, groups: list[tuple[date, str]]) -> None:
        """PostgreSQL: one ``INSERT … SELECT`` per period, grouped by the period and the three unit levels
        at once (``GROUPING SETS``), quantiles by ``percentile_cont``."""
        low, high = self._bounds(period, groups)
        when = {"day": "opened_day", "week": "opened_week", "month": "opened_month"}[period]
        sc, st, gr = (f"coalesce(f.{c}_id, '')" for c in ("subcenter", "station", "grid"))
        sums = ["count(*)", *(f"sum(f.{c})" for c in statistics.COUNTS[1:])]
        arrays = [f"percentile_cont(ARRAY[0.5, 0.9]::float8[]) WITHIN GROUP (ORDER BY f.{c})" for c in QUANTILED]
        columns = ["period", "level", "period_start", "subcenter_id", "station_id", "grid_id", *statistics.COUNTS,
                   *(f"{c}_{q}" for c in QUANTILED for q in ("p50", "p90"))]
        self.db.execute(sa.text(f"""
            WITH wanted AS (SELECT * FROM unnest(CAST(:starts AS date[]), CAST(:subcenters AS text[])) AS w(p, sc))
            INSERT INTO closure_rollups ({", ".join(columns)})
            SELECT CAST(:period AS text),
                   CASE WHEN g.in_grid = 0 THEN 'grid' WHEN g.in_station = 0 THEN 'station' ELSE 'subcenter' END,
                   g.p, g.sc, coalesce(g.st, ''), coalesce(g.gr, ''),
                   {", ".join(f"g.n{i}" for i in range(len(sums)))},
                   {", ".join(f"g.q{i}[1], g.q{i}[2]" for i in range(len(arrays)))}
            FROM (SELECT f.{when} AS p, {sc} AS sc, {st} AS st, {gr} AS gr,
                         GROUPING({gr}) AS in_grid, GROUPING({st}) AS in_station,
                         {", ".join(f"{e} AS n{i}" for i, e in enumerate(sums))},
                         {", ".join(f"{e} AS q{i}" for i, e in enumerate(arrays))}
                  FROM case_facts f JOIN wanted w ON f.{when} = w.p AND {sc} = w.sc
                  WHERE f.opened_day >= :low AND f.opened_day < :high
                  GROUP BY f.{when}, GROUPING SETS (({sc}, {st}, {gr}), ({sc}, {st}), ({sc}))) AS g"""),
            {"starts": [start for start, _ in groups], "subcenters": [sc for _, sc in groups], "period": period,
             "low": low, "high": high})

    def _compute_in_python(self, period: str, groups: list[tuple[date, str]]) -> None:
        """SQLite: the statistics rows of the groups read once, summed and quantiled here."""
        low, high = self._bounds(period, groups)
        wanted = set(groups)
        f = case_facts.c
        found: dict[tuple, dict] = {}
        query = sa.select(f.opened_day, f.subcenter_id, f.station_id, f.grid_id,
                          *(f[c] for c in statistics.COUNTS[1:]), *(f[c] for c in QUANTILED)).where(
            f.opened_day >= low, f.opened_day < high)
        for row in self.db.execute(query):
            start, subcenter = period_start(period, row.opened_day), row.subcenter_id or ""
            if (start, subcenter) not in wanted:
                continue
            station, grid = row.station_id or "", row.grid_id or ""
            for level, key in (("grid", (subcenter, station, grid)), ("station", (subcenter, station, "")),
                               ("subcenter", (subcenter, "", ""))):
                group = found.setdefault((level, start, *key), {"opened": 0, **{c: 0 for c in statistics.COUNTS[1:]},
                                                                **{c: [] for c in QUANTILED}})
                group["opened"] += 1
                for c in statistics.COUNTS[1:]:
                    group[c] += row._mapping[c] or 0
                for c in QUANTILED:
                    if row._mapping[c] is not None:
                        group[c].append(row._mapping[c])
        rows = []
        for (level, start, subcenter, station, grid), group in found.items():
            row = {"period": period, "level": level, "period_start": start, "subcenter_id": subcenter,
                   "station_id": station, "grid_id": grid, **{c: group[c] for c in statistics.COUNTS}}
            for c in QUANTILED:
                row[f"{c}_p50"] = statistics.quantile(group[c], 0.5)
                row[f"{c}_p90"] = statistics.quantile(group[c], 0.9)
            rows.append(row)
        if rows:
            self.db.execute(closure_rollups.insert(), rows)

    # -- read --------------------------------------------------------------------------------------

    def read(self, identity: Identity, group_by: str, period: str, first: date, end: date) -> list[dict] | None:
        """The statistics rows (``domain.statistics.row``) of ``group_by`` (grid, station, subcenter) for
        the whole periods starting in ``[first, end)``, in the caller's scope, ordered by period then key
        as the per-case query orders them; None where one group spans several rollup rows. Call after
        ``refresh`` in the same transaction."""
        scope = _scope_level(identity)
        level = LEVELS[min(LEVELS.index(group_by), LEVELS.index(scope) if scope else len(LEVELS))]
        r = closure_rollups.c
        key = sa.func.nullif(r[f"{group_by}_id"], "")
        query = sa.select(r.period_start, key.label("k"), *(r[c] for c in statistics.COUNTS),
                          *(r[f"{c}_{q}"] for c in QUANTILED for q in ("p50", "p90"))).where(
            r.period == period, r.level == level, r.period_start >= first, r.period_start < end)
        if scope:
            query = query.where(r[f"{scope}_id"] == identity.area)
        ordered = key.collate("C") if self.store.postgres else key
        field = statistics.GROUP_FIELDS[group_by]
        counted = tuple(enumerate(statistics.COUNTS, start=2))
        quantiled = tuple((c, 2 + len(counted) + 2 * i) for i, c in enumerate(QUANTILED))
        out, previous = [], None
        with collector_paused():
            for row in self.db.execute(query.order_by(r.period_start, ordered)).all():  # by position: 5 × faster
                if row[:2] == previous:
                    return None
                previous = row[:2]
                out.append(statistics.row({field: row[1], "period_start": row[0].isoformat()},
                                          {c: row[i] for i, c in counted},
                                          {c: (row[i], row[i + 1]) for c, i in quantiled}))
        return out


def serves(identity: Identity, group_by: str) -> bool:
    """Whether the rollups can answer ``group_by`` for ``identity``: a unit grouping, by a caller who sees
    the whole city or one area of a unit level."""
    if group_by not in LEVELS or identity.role == Role.DEPARTMENT:
        return False
    return ROLE_SCOPE.get(Role(identity.role)) is None or bool(identity.area)


def _scope_level(identity: Identity) -> str | None:
    level = ROLE_SCOPE.get(Role(identity.role))
    return level.area if level is not None else None
