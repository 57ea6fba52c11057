"""Time limits and deadlines: the one place that computes a deadline and the one that decides "late".

A case carries a frozen ``TimePolicy`` (snapshotted from its category × severity in the policy file
when it opens, so later policy edits never change a case in flight — after Grafana OnCall's
escalation snapshot): the time limit at each of the four levels, the time limit for the grid
worker's on-site verification, the warning thresholds, the caps on extensions (延期) and the working
calendar the working-time units count in. The store keeps it as ``TimePolicy.to_dict()``.

Limits are ``Limit(amount, unit)``:

- ``seconds``, ``minutes``, ``hours``: elapsed time on the UTC line; holidays and daylight saving
  do not matter (the time model's rules, README "Time, calendars and statistics").
- ``working_hours`` (工作小时): time counted only inside the calendar's working periods. A clock
  started outside working time starts at the next working period; an amount that runs out exactly
  at the end of a period ends there (17:30), not at the start of the next.
- ``working_days`` (工作日): as the Civil Code counts periods (arts. 201 and 203: 开始的当日不计入,
  the last day ends at the close of business): the day the clock starts does not count, and the
  deadline is the closing time of the N-th working day after it. A fraction of a day is counted as
  that fraction of the N-th day's working time.

``deadline`` adds, ``elapsed`` measures, ``time_left`` is what ``deadline`` needs to restart a
suspended clock (for working units: the working time between the suspension and the deadline, so
suspended time outside working periods changes nothing), and ``warning_times`` places the warnings.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from services.escalation.domain import calendar as _calendar
from services.escalation.domain.calendar import WorkingCalendar
from shared.timemodel import NOMINAL_SECONDS, UNIT_SECONDS, UNITS, WORKING_UNITS, Limit
from shared.vocabulary import Level

__all__ = ["NOMINAL_SECONDS", "UNITS", "UNIT_SECONDS", "WORKING_UNITS", "Limit", "TimePolicy", "add_working",
           "deadline", "deadline_basis", "elapsed", "is_late", "shift_warnings", "stretch_warnings", "time_left",
           "warning_times", "working_between"]

#: Used when a policy does not say (a case opened before the policy file had these keys).
DEFAULT_VERIFICATION_HOURS = 24.0
DEFAULT_MAX_EXTENSIONS = 2
DEFAULT_MAX_EXTENSION_HOURS = 48.0
#: Warning thresholds of a policy that does not name them (fractions of a limit).
DEFAULT_WARNINGS: tuple[float, ...] = ()


def _thresholds(values) -> tuple[float, ...]:
    out = tuple(float(p) for p in values)
    if any(not 0 < p < 1 for p in out) or list(out) != sorted(set(out)):
        raise ValueError("warning thresholds are ascending fractions between 0 and 1")
    return out


@dataclass(frozen=True)
class TimePolicy:
    """The time rules frozen onto one case: ``levels[n - 1]`` is the limit at level ``n``;
    ``warnings`` the fractions of a level's limit at which a warning fires (ascending, each in
    (0, 1)), and ``level_warnings`` the levels that have their own (``((level, thresholds), …)``, a
    level's own may be empty: no warning there); ``calendar`` the working calendar its working units
    count in (time zone, working periods, holiday region and overrides, copied when the case opened;
    the official holiday facts stay in the city's calendar files)."""

    levels: tuple[Limit, Limit, Limit, Limit]
    verification: Limit = Limit(DEFAULT_VERIFICATION_HOURS)
    max_extensions: int = DEFAULT_MAX_EXTENSIONS
    max_extension_total: Limit = Limit(DEFAULT_MAX_EXTENSION_HOURS)
    warnings: tuple[float, ...] = DEFAULT_WARNINGS
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    level_warnings: tuple[tuple[int, tuple[float, ...]], ...] = ()
    #: a functional department's time to feed back on an assignment (派遣 → 反馈)
    department_limit: Limit = Limit(DEFAULT_VERIFICATION_HOURS)
    #: the holder's time to answer an urge (督办) that names none
    urge_response: Limit = Limit(4.0)
    #: staff's time to accept, refuse, void or merge a report that waits for acceptance (立案)
    acceptance_limit: Limit = Limit(DEFAULT_VERIFICATION_HOURS)
    #: the levels whose owner may suspend (挂账) without the level above approving (default: none)
    suspend_without_approval: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.levels) != len(Level):
            raise ValueError(f"a time policy needs a limit for each of the {len(Level)} levels")
        if any(limit.amount <= 0 for limit in (*self.levels, self.verification)):
            raise ValueError("time limits must be positive")
        if self.max_extensions < 0:
            raise ValueError("max_extensions cannot be negative")
        _thresholds(self.warnings)
        for level, thresholds in self.level_warnings:
            Level.of(level)
            _thresholds(thresholds)

    def limit(self, level: Level | int) -> Limit:
        """The time allowed at ``level`` before it escalates (or, at level 4, is overdue)."""
        return self.levels[Level.of(level) - 1]

    def warnings_at(self, level: Level | int) -> tuple[float, ...]:
        """The warning thresholds of ``level``: its own, else the policy's ``warnings``."""
        own = dict(self.level_warnings)
        return own.get(int(Level.of(level)), self.warnings)

    @classmethod
    def from_hours(cls, hours: Mapping[int | str, float], **caps) -> TimePolicy:
        """From level number → hours; ``caps`` may set any other field."""
        by_level = {int(k): float(v) for k, v in hours.items()}
        return cls(tuple(Limit(by_level[level]) for level in Level), **caps)

    def to_dict(self) -> dict:
        """A plain, JSON-ready dict; ``from_dict(p.to_dict()) == p``."""
        data = {"levels": {str(int(level)): self.limit(level).to_dict() for level in Level},
                "verification": self.verification.to_dict(),
                "extensions": {"max_count": self.max_extensions, "max_total": self.max_extension_total.to_dict()},
                "warnings": list(self.warnings),
                "calendar": self.calendar.to_dict(), "department": self.department_limit.to_dict(),
                "urge_response": self.urge_response.to_dict(), "acceptance": self.acceptance_limit.to_dict(),
                "suspension": {"without_approval": list(self.suspend_without_approval)}}
        if self.level_warnings:
            data["level_warnings"] = {str(level): list(p) for level, p in self.level_warnings}
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> TimePolicy:
        """Inverse of ``to_dict``. Older snapshots load too: a mapping of level number → hours alone
        (the old ``hours`` column), and snapshots without warnings, calendar or per-level warnings. A
        snapshot from before suspensions needed approval keeps what it promised: every owner suspends at
        once (a policy change never changes a case in flight)."""
        if "levels" not in data:
            return cls.from_hours(data)
        levels = tuple(Limit.from_dict(data["levels"][str(int(level))]) for level in Level)
        caps = data.get("extensions", {})
        calendar = WorkingCalendar.from_dict(data["calendar"]) if data.get("calendar") else WorkingCalendar()
        return cls(levels,
                   Limit.from_dict(data.get("verification", DEFAULT_VERIFICATION_HOURS)),
                   int(caps.get("max_count", DEFAULT_MAX_EXTENSIONS)),
                   Limit.from_dict(caps.get("max_total", DEFAULT_MAX_EXTENSION_HOURS)),
                   tuple(float(p) for p in data.get("warnings", DEFAULT_WARNINGS)),
                   calendar,
                   tuple(sorted((int(k), tuple(float(p) for p in v))
                                for k, v in (data.get("level_warnings") or {}).items())),
                   Limit.from_dict(data.get("department", DEFAULT_VERIFICATION_HOURS)),
                   Limit.from_dict(data.get("urge_response", 4.0)),
                   Limit.from_dict(data.get("acceptance", DEFAULT_VERIFICATION_HOURS)),
                   tuple(int(level) for level in data.get("suspension", {}).get(
                       "without_approval", [int(level) for level in Level])))


# -- working time ---------------------------------------------------------------------------------

# add_working and working_between are pure functions of immutable values, and a batch of cases opened
# together shares one ``now`` and a few limits: remembering them cut the CPU of opening a case by 6 %
# (0.348 → 0.327 ms per case, escalation's consumer in-process on PostgreSQL).
@lru_cache(maxsize=4096)
def add_working(start: datetime, seconds: float, calendar: WorkingCalendar) -> datetime:
    """The instant at which ``seconds`` of working time have passed since ``start`` (aware UTC).
    The clock waits for the next working period; an amount ending exactly at a period's end ends
    there. Zero seconds is ``start`` itself."""
    left = timedelta(seconds=seconds)
    if left <= timedelta(0):
        return start
    for begin, end in calendar.periods_from(start):
        if left <= end - begin:
            return begin + left
        left -= end - begin
    raise AssertionError("unreachable")  # periods_from raises first


@lru_cache(maxsize=4096)
def working_between(start: datetime, end: datetime, calendar: WorkingCalendar) -> float:
    """Working seconds in ``[start, end)`` (0 when ``end <= start``)."""
    total = timedelta(0)
    if end <= start:
        return 0.0
    for begin, finish in calendar.periods_from(start):
        if begin >= end:
            break
        total += min(finish, end) - begin
    return total.total_seconds()


def forget() -> None:
    """Forget the remembered working-time sums (the official calendar changed)."""
    add_working.cache_clear()
    working_between.cache_clear()


_calendar.on_change(forget)


def closing_time(day, calendar: WorkingCalendar) -> datetime:
    """The end of the last working period of a working day (aware UTC)."""
    return calendar.utc_periods(day)[-1][1]


def add_working_days(start: datetime, days: float, calendar: WorkingCalendar) -> datetime:
    """The closing time of the N-th working day after ``start``'s local date (the start day does
    not count: Civil Code arts. 201, 203). A fractional N ends that fraction into the last day's
    working time (``add_working_days(s, 0.5)``: half the first working day after the start day)."""
    whole = int(days)
    fraction = days - whole
    day = calendar.local_date(start)
    found = None
    wanted = whole + (1 if fraction > 0 else 0)
    if wanted == 0:
        return start
    for count, candidate in enumerate(calendar.working_days_after(day), start=1):
        found = candidate
        if count == wanted:
            break
    if fraction > 0:
        periods = calendar.utc_periods(found)
        length = sum((b - a).total_seconds() for a, b in periods)
        return add_working(periods[0][0], fraction * length, calendar)
    return closing_time(found, calendar)


def working_days_between(start: datetime, end: datetime, calendar: WorkingCalendar) -> float:
    """The reverse of ``add_working_days``: how many working days after ``start``'s local date have
    closed by ``end``, plus the fraction of the working time of the day in progress."""
    count = 0.0
    for day in calendar.working_days_after(calendar.local_date(start)):
        periods = calendar.utc_periods(day)
        if periods[0][0] >= end:
            break
        if periods[-1][1] <= end:
            count += 1
            continue
        length = sum((b - a).total_seconds() for a, b in periods)
        count += working_between(periods[0][0], end, calendar) / length
        break
    return count


def deadline(start: datetime, limit: Limit, calendar: WorkingCalendar | None = None) -> datetime:
    """The instant ``limit`` after ``start`` (aware UTC datetimes). The only deadline arithmetic:
    a level's deadline, the verification deadline, an extension added to a deadline, and a
    resumed case's remaining time all come from here. Working units need the case's ``calendar``
    (``TimePolicy.calendar``); calendar units ignore it. ValueError for a working unit without one."""
    if not limit.working:
        return start + timedelta(seconds=limit.seconds)
    if calendar is None:
        raise ValueError(f"a limit in {limit.unit} needs a working calendar")
    if limit.unit == "working_hours":
        return add_working(start, limit.amount * 3600, calendar)
    return add_working_days(start, limit.amount, calendar)


def elapsed(start: datetime, end: datetime, unit: str, calendar: WorkingCalendar | None = None) -> float:
    """The reverse of ``deadline``: how much of ``unit`` has passed from ``start`` to ``end``, so
    that ``elapsed(s, deadline(s, Limit(n, unit)), unit) == n``."""
    if unit in UNIT_SECONDS:
        return (end - start).total_seconds() / UNIT_SECONDS[unit]
    if calendar is None:
        raise ValueError(f"{unit} needs a working calendar")
    if unit == "working_hours":
        return working_between(start, end, calendar) / 3600
    return working_days_between(start, end, calendar)


def is_late(deadline: datetime | None, now: datetime) -> bool:
    """The only "late" rule: a deadline has passed from its very instant on (``now >= deadline``).
    No deadline (closed, suspended) is never late. The case list's ``overdue`` filter, the
    scheduler's claim and the domain use this same comparison."""
    return deadline is not None and now >= deadline


def time_left(deadline: datetime, at: datetime, unit: str = "seconds",
              calendar: WorkingCalendar | None = None) -> Limit:
    """What remains of a running clock at ``at`` (never negative), so that
    ``deadline(later, time_left(d, at, unit, cal), cal)`` restarts the clock with exactly that much
    (suspension). For a working ``unit`` it is the working time between ``at`` and the deadline,
    in ``working_hours``: the remaining time is consumed from the resume instant."""
    if unit in WORKING_UNITS and calendar is not None:
        return Limit(working_between(at, deadline, calendar) / 3600, "working_hours")
    return Limit(max((deadline - at) / timedelta(microseconds=1), 0) / 1_000_000, "seconds")


def measure(start: datetime, end: datetime, unit: str, calendar: WorkingCalendar | None = None) -> float:
    """The clock time in ``[start, end)`` in seconds (0 when ``end <= start``): working seconds for a
    working ``unit`` (with a calendar), elapsed seconds otherwise. What warnings are shares of."""
    if unit in WORKING_UNITS and calendar is not None:
        return working_between(start, end, calendar)
    return max((end - start).total_seconds(), 0.0)


def advance(start: datetime, seconds: float, unit: str, calendar: WorkingCalendar | None = None) -> datetime:
    """The inverse of ``measure``: the instant ``seconds`` of clock time after ``start``."""
    if unit in WORKING_UNITS and calendar is not None:
        return add_working(start, seconds, calendar)
    return start + timedelta(seconds=seconds)


def warning_times(start: datetime, end: datetime, unit: str, thresholds: Sequence[float],
                  calendar: WorkingCalendar | None = None) -> tuple[tuple[float, datetime], ...]:
    """When each warning of a clock running from ``start`` to its deadline ``end`` fires: threshold
    ``p`` when the clock time used (working time for a working unit, elapsed time otherwise) reaches
    ``p`` × the whole span. Returns ``(p, instant)`` pairs in threshold order."""
    if end <= start:
        return ()
    span = measure(start, end, unit, calendar)
    return tuple((p, advance(start, p * span, unit, calendar)) for p in thresholds)


def shift_warnings(warnings: Sequence[tuple[float, datetime]], suspended: datetime, resumed: datetime, unit: str,
                   calendar: WorkingCalendar | None = None) -> tuple[tuple[float, datetime], ...]:
    """The pending warnings of a clock stopped at ``suspended`` and restarted at ``resumed``: each
    fires after as much clock time from the resume as it had left at the suspension, so a warning
    is a share of the time worked, net of the suspension (one already due fires at the resume)."""
    return tuple((p, advance(resumed, measure(suspended, at, unit, calendar), unit, calendar))
                 for p, at in warnings)


def stretch_warnings(warnings: Sequence[tuple[float, datetime]], old: datetime, new: datetime, unit: str,
                     calendar: WorkingCalendar | None = None) -> tuple[tuple[float, datetime], ...]:
    """The pending warnings of a clock whose deadline moved from ``old`` to ``new`` (an extension):
    the whole span grew by ``measure(old, new)``, so threshold ``p`` fires ``p`` × that much later."""
    added = measure(old, new, unit, calendar)
    return tuple((p, advance(at, p * added, unit, calendar)) for p, at in warnings)


def deadline_basis(first: datetime, last: datetime, calendar: WorkingCalendar) -> str | None:
    """What a working-time deadline computed over ``first``..``last`` rests on: ``"official"``,
    ``"provisional"`` (a year by statutory rules only) or ``"calendar_gap"`` (a year by no source),
    per ``WorkingCalendar.basis`` over the local dates; None when holidays play no part."""
    return calendar.basis(calendar.local_date(first), calendar.local_date(last))
