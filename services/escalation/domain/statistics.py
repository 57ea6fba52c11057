"""Closure-time statistics: the rates and quantiles of one group of cases, and the
ranking of groups by a measure. Plain Python over the per-case facts (``measures.Facts``) that the
store has counted and collected; every definition is in the README's "Closure-time statistics".
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: The group keys of ``GET /escalation/v1/stats/closure-times`` and the row field each fills.
GROUP_FIELDS = {"grid": "area_id", "station": "area_id", "subcenter": "area_id", "category": "category",
                "severity": "severity", "reporter": "reporter"}
PERIODS = ("day", "week", "month")
#: The cohort a row counts (``by``): the cases opened in its period, or those closed in it (考核 by closing).
BYS = ("opened", "closed")
#: Quantiled durations (seconds): name → the facts column.
DURATIONS = {"time_to_acknowledge": "ack_s", "time_to_resolve": "resolve_s", "time_to_close": "close_s",
             "time_to_respond": "respond_s"}  # respond: from the first urge (督办) to its answer
LEVEL_COLUMNS = {str(n): f"level{n}_s" for n in (1, 2, 3, 4)}  # working seconds at each level
LEVEL_CALENDAR_COLUMNS = {str(n): f"level{n}_cal_s" for n in (1, 2, 3, 4)}  # calendar seconds at each level
#: Every quantiled statistics column (seconds): the durations, then working and calendar time per level.
QUANTILED = (*DURATIONS.values(), *LEVEL_COLUMNS.values(), *LEVEL_CALENDAR_COLUMNS.values())
#: Counted flags (the facts columns summed per group).
COUNTS = ("opened", "closed", "on_time", "on_time_ext", "on_time_final", "reworked", "extended", "escalated",
          "overdue", "urged", "urges_late")
#: Rates: name → (numerator count, denominator count). On time, two ways (both named in the README):
#: ``on_time_rate`` / ``on_time_rate_with_extensions`` — never late at any level (without / with the
#: approved extensions); ``on_time_rate_final`` (按期结案率 against the final deadline) — the last resolve
#: before the deadline in force then, so a case that climbed the ladder and was fixed in time there counts.
RATES = {"closure_rate": ("closed", "opened"), "on_time_rate": ("on_time", "closed"),
         "on_time_rate_with_extensions": ("on_time_ext", "closed"),
         "on_time_rate_final": ("on_time_final", "closed"), "rework_rate": ("reworked", "closed"),
         "extension_rate": ("extended", "opened"), "escalation_rate": ("escalated", "opened")}
#: What a ranking may sort by: a count, a rate, or ``<duration>_median`` / ``<duration>_p90``.
RANKABLE = ("opened", "closed", "overdue", "urged", "urges_late", *RATES,
            *(f"{d}_{q}" for d in DURATIONS for q in ("median", "p90")))


#: ``group_by=department``: a department's assignments (派遣) by the local date they were made.
#: Counts, rates (name → (numerator, denominator)) and quantiled durations (name → seconds field).
DEPARTMENT_COUNTS = ("assigned", "acknowledged", "done", "declined", "on_time", "overdue")
DEPARTMENT_RATES = {"on_time_rate": ("on_time", "done"), "decline_rate": ("declined", "fed_back")}
DEPARTMENT_DURATIONS = {"time_to_accept": "accept_s", "time_to_feedback": "feedback_s"}
DEPARTMENT_RANKABLE = (*DEPARTMENT_COUNTS, *DEPARTMENT_RATES,
                       *(f"{d}_{q}" for d in DEPARTMENT_DURATIONS for q in ("median", "p90")))
#: The CSV columns of a department row (``flatten``ed).
DEPARTMENT_COLUMNS = ("department", "period_start", *DEPARTMENT_RANKABLE)


def department_rows(assignments: Sequence[Mapping], period_of, by: str = "opened") -> list[dict]:
    """The statistics rows of departments' assignments, one per department and period, ordered by
    period then department. Each of ``assignments`` has ``department_id``, ``status``, ``assigned_at``,
    ``deadline_at``, ``overdue``, ``acknowledged_at`` and ``feedback_at`` (aware datetimes or None);
    ``period_of(moment)`` is the local date the period of ``moment`` starts: of ``assigned_at``
    (``by="opened"``: the assignments made in the period) or of ``feedback_at`` (``by="closed"``: the
    assignments the department closed in the period by its feedback, done or declined — the monthly
    review of a department's work; each of them is fed back, so ``done + declined = assigned`` there).

    - ``assigned``, ``acknowledged`` (签收), ``done`` and ``declined`` (退单) count assignments;
      ``overdue`` those flagged past their deadline;
    - ``on_time``: done with the feedback at or before the deadline; ``on_time_rate`` = on_time / done;
    - ``decline_rate`` = declined / (done + declined);
    - ``time_to_accept`` (assigned → acknowledged) and ``time_to_feedback`` (assigned → done or declined):
      calendar seconds, ``{"median", "p90"}``."""
    groups: dict[tuple, dict] = {}
    for a in assignments:
        key = (period_of(a["feedback_at"] if by == "closed" else a["assigned_at"]), a["department_id"])
        g = groups.setdefault(key, {**dict.fromkeys(DEPARTMENT_COUNTS, 0), "accept_s": [], "feedback_s": []})
        g["assigned"] += 1
        g["overdue"] += int(bool(a["overdue"]))
        if a["acknowledged_at"] is not None:
            g["acknowledged"] += 1
            g["accept_s"].append((a["acknowledged_at"] - a["assigned_at"]).total_seconds())
        if a["status"] in ("done", "declined") and a["feedback_at"] is not None:
            g[a["status"]] += 1
            g["feedback_s"].append((a["feedback_at"] - a["assigned_at"]).total_seconds())
            if a["status"] == "done" and a["deadline_at"] is not None and a["feedback_at"] <= a["deadline_at"]:
                g["on_time"] += 1
    out = []
    for (period, department), g in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1])):
        counts = {**{c: g[c] for c in DEPARTMENT_COUNTS}, "fed_back": g["done"] + g["declined"]}
        item = {"department": department, "period_start": period.isoformat(),
                **{c: counts[c] for c in DEPARTMENT_COUNTS}}
        item.update({name: rate(counts[n], counts[d]) for name, (n, d) in DEPARTMENT_RATES.items()})
        item.update({name: {"median": quantile(g[column], 0.5), "p90": quantile(g[column], 0.9)}
                     for name, column in DEPARTMENT_DURATIONS.items()})
        out.append(item)
    return out


def quantile(values: Sequence[float], p: float) -> float | None:
    """The ``p`` quantile by linear interpolation between the closest ranks (PostgreSQL's
    ``percentile_cont``, numpy's default): position ``p × (n − 1)`` in the sorted values; None if empty."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    position = p * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rate(numerator: int, denominator: int) -> float | None:
    """A fraction 0–1, or None where the denominator is 0."""
    return numerator / denominator if denominator else None


def row(key: Mapping, counts: Mapping[str, int], quantiles: Mapping[str, tuple[float | None, float | None]]) -> dict:
    """One answer row: the group key, the counts, the rates and ``{"median", "p90"}`` per duration.
    ``quantiles`` maps a facts column (``close_s``, ``level2_s``) to its (median, p90). (A year by station
    and day makes 50,000 of them: the loops below are over tuples made once.)"""
    out = dict(key)
    out["opened"], out["closed"], out["overdue"] = counts["opened"], counts["closed"], counts["overdue"]
    out["urged"], out["urges_late"] = counts.get("urged", 0), counts.get("urges_late", 0)  # 督办
    for name, numerator, denominator in _RATES:
        below = counts[denominator]
        out[name] = counts[numerator] / below if below else None  # ``rate``
    for name, column in _DURATIONS:
        median, p90 = quantiles.get(column, _NONE)
        out[name] = {"median": median, "p90": p90}
    for name, levels in _AT_LEVEL:
        at_level = out[name] = {}
        for level, column in levels:
            median, p90 = quantiles.get(column, _NONE)
            at_level[level] = {"median": median, "p90": p90}
    return out


_RATES = tuple((name, numerator, denominator) for name, (numerator, denominator) in RATES.items())
_DURATIONS = tuple(DURATIONS.items())
_AT_LEVEL = (("time_at_level", tuple(LEVEL_COLUMNS.items())),
             ("calendar_at_level", tuple(LEVEL_CALENDAR_COLUMNS.items())))
_NONE = (None, None)


def value_of(item: dict, measure: str) -> float | None:
    """The value a ranking sorts by (``time_to_close_p90`` reads ``item["time_to_close"]["p90"]``)."""
    if measure in item:
        return item[measure]
    name, _, q = measure.rpartition("_")
    return item[name][q]


def rank(rows: list[dict], measure: str, descending: bool = True) -> list[dict]:
    """Rank the rows of each period by ``measure`` (1 = best placed in the chosen order; equal values
    share a rank; rows without a value come last, unranked)."""
    by_period: dict = {}
    for item in rows:
        by_period.setdefault(item.get("period_start"), []).append(item)
    ranked = []
    for period in sorted(by_period, key=lambda p: (p is None, p)):
        group = by_period[period]
        valued = sorted((r for r in group if value_of(r, measure) is not None),
                        key=lambda r: value_of(r, measure), reverse=descending)
        previous, place = object(), 0
        for index, item in enumerate(valued, start=1):
            value = value_of(item, measure)
            if value != previous:
                place, previous = index, value
            ranked.append({**item, "rank": place})
        ranked += [{**r, "rank": None} for r in group if value_of(r, measure) is None]
    return ranked


def flatten(item: dict) -> dict:
    """A row as CSV columns: ``time_to_close_p90``, ``time_at_level_2_median``, ``calendar_at_level_2_p90``."""
    flat = {}
    for key, value in item.items():
        if key in ("time_at_level", "calendar_at_level"):
            for level, q in value.items():
                flat.update({f"{key}_{level}_{k}": v for k, v in q.items()})
        elif isinstance(value, dict):
            flat.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat
