"""The city's working calendar: which local days are working days and which local wall-clock
periods of them count as working time. Plain Python; ``deadlines.py`` is its only caller for
arithmetic, and the rest of gridcase reaches working time through ``deadlines``. Units, weekdays,
periods and the official calendar files are defined once, in ``shared/timemodel.py``.

Rules (the README's "Working calendars"):

- A day's status is decided by, in order: the city's and its units' overrides (``extra_holidays``,
  ``extra_workdays``); the **official file** of its year (the days off and swapped working days
  published by the authority: for China the State Council's yearly notice), installed per region by
  ``install_official``; for a year with no official file, the **statutory rules** of the ``holidays``
  package (days off only, no swapped working days), only where the city opted in (``statutory``),
  each deadline so computed marked **provisional**; else nothing: the day is taken by its weekday
  and a deadline computed over it is flagged ``calendar_gap`` (``WorkingCalendar.basis``). A date is
  never silently assumed a working day.
- A day that is not a day off is a working day when its weekday has working periods; a swapped
  working day uses its weekday's periods, or Monday's when its weekday has none.
- A **round-the-clock** calendar (7×24) works every day 00:00–24:00, holidays included.
- **Periods** are local wall time in the calendar's IANA time zone (minutes since midnight, ``24:00``
  the next midnight), converted to UTC per day, so a daylight-saving change moves the UTC instants and
  never the length of an office's working period.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.timemodel import (
    DAY_MINUTES,
    WEEKDAYS,
    OfficialYear,
    Period,
    format_hours,
    packaged_years,
    parse_period,
    parse_periods,
)

#: The default working periods of a working day (the demo city's offices: 8 working hours).
DEFAULT_PERIODS: tuple[Period, ...] = ((8 * 60 + 30, 12 * 60), (13 * 60, 17 * 60 + 30))
#: What ``WorkingCalendar.basis`` answers: every day from the official files (or overrides), some day
#: from statutory rules only, some day from no source at all.
OFFICIAL, PROVISIONAL, CALENDAR_GAP = "official", "provisional", "calendar_gap"
ROUND_THE_CLOCK: Mapping[int, tuple[Period, ...]] = {d: ((0, DAY_MINUTES),) for d in range(7)}

__all__ = ["CALENDAR_GAP", "DEFAULT_PERIODS", "OFFICIAL", "PROVISIONAL", "WorkingCalendar", "install_official",
           "known_region", "official_years", "on_change", "parse_period", "parse_periods"]

_OFFICIAL: dict[str, dict[int, OfficialYear]] = {}
_ON_CHANGE: list = []


def on_change(forget) -> None:
    """Call ``forget()`` whenever an official calendar is installed (``deadlines`` forgets its memos)."""
    _ON_CHANGE.append(forget)


def install_official(region: str, years: Mapping[int, OfficialYear]) -> None:
    """Make ``years`` (``shared.timemodel.read_year_folder``) the official calendar of ``region`` in this
    process (a process serves one city). Until a region is installed, its packaged files are used
    (``shared/holidays/<REGION>/``). Remembered working periods are forgotten when the data changes."""
    if _OFFICIAL.get(region) != dict(years):
        _OFFICIAL[region] = dict(years)
        _forget()


def official_years(region: str) -> dict[int, OfficialYear]:
    """The official years known for ``region``: installed, else packaged, else none."""
    if region not in _OFFICIAL:
        _OFFICIAL[region] = dict(packaged_years(region))
    return _OFFICIAL[region]


@functools.lru_cache(maxsize=64)
def _statutory(region: str):
    """The ``holidays`` package's table of ``region`` (``CN``, ``DE-BE``: country, optional subdivision)."""
    import holidays

    country, _, subdiv = region.partition("-")
    return holidays.country_holidays(country, subdiv=subdiv or None)


def known_region(region: str | None) -> bool:
    """Whether ``region`` names a region the ``holidays`` package knows (``CN``, ``DE``, ``DE-BE``, …),
    or None for a city without public holidays."""
    if region is None:
        return True
    try:
        _statutory(region)
        return True
    except Exception:  # noqa: BLE001 - the holidays package raises its own errors for unknown codes
        return False


@dataclass(frozen=True)
class WorkingCalendar:
    """A city's (or a unit's) working calendar. ``hours`` maps a weekday (0 = Monday) to its local
    working periods (minutes since midnight); a weekday without periods is not worked. ``region`` names
    the holiday region (None: no public holidays); ``statutory`` lets a year without an official file
    fall back on statutory rules (provisional); ``round_the_clock`` works every day, all day."""

    time_zone: str = "UTC"
    hours: Mapping[int, tuple[Period, ...]] = field(
        default_factory=lambda: {d: DEFAULT_PERIODS for d in range(5)})
    region: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    statutory: bool = False
    round_the_clock: bool = False

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # raises for an unknown zone
        if self.round_the_clock:
            object.__setattr__(self, "hours", dict(ROUND_THE_CLOCK))
        hours = {d: tuple(tuple(p) for p in self.hours.get(d) or ()) for d in range(7)}
        if not any(hours.values()):
            raise ValueError("a working calendar needs working periods on at least one weekday")
        if any(not (0 <= a < b <= DAY_MINUTES) for periods in hours.values() for a, b in periods):
            raise ValueError("a working period is minutes since midnight, 0 <= start < end <= 1440")
        object.__setattr__(self, "hours", {d: p for d, p in hours.items() if p})
        object.__setattr__(self, "_hash", hash((self.time_zone, tuple(sorted(self.hours.items())), self.region,
                                                self.extra_holidays, self.extra_workdays, self.statutory,
                                                self.round_the_clock)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.time_zone)

    # -- days -------------------------------------------------------------------------------------

    def _official(self, day: date) -> bool | None:
        """False: a day off; True: a swapped working day; None: nothing said (see ``basis``)."""
        if self.region is None:
            return None
        year = official_years(self.region).get(day.year)
        if year is not None:
            return year.status(day)
        if self.statutory and day in _statutory(self.region):
            return False
        return None

    def is_working_day(self, day: date) -> bool:
        """Overrides first, then the year's official file (or, opted in, statutory rules), then whether
        the weekday has working periods. A round-the-clock calendar works every day."""
        if self.round_the_clock or day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        said = self._official(day)
        if said is not None:
            return said
        return bool(self.hours.get(day.weekday()))

    def periods_of(self, day: date) -> tuple[Period, ...]:
        """The local working periods of ``day``: none on a day off; on a swapped working day its
        weekday's, or Monday's (or the first worked weekday's) when its weekday has none."""
        if not self.is_working_day(day):
            return ()
        return self.hours.get(day.weekday()) or self.hours.get(0) or next(iter(self.hours.values()))

    def basis(self, first: date, last: date) -> str | None:
        """What the days ``first``..``last`` were decided by: ``"official"`` (every year has an official
        file), ``"provisional"`` (some year only by statutory rules), ``"calendar_gap"`` (some year by
        no source: its weekdays were taken as they come). None when no holidays matter (round the
        clock, or no holiday region)."""
        if self.round_the_clock or self.region is None:
            return None
        known = official_years(self.region)
        answer = OFFICIAL
        for year in range(min(first, last).year, max(first, last).year + 1):
            if year in known:
                continue
            if not self.statutory:
                return CALENDAR_GAP
            answer = PROVISIONAL
        return answer

    def utc_periods(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """``day``'s working periods as aware UTC instants."""
        return _utc_periods(self, day)

    def local_date(self, instant: datetime) -> date:
        """The city's calendar date of a UTC instant."""
        return instant.astimezone(self.zone).date()

    def working_days_after(self, day: date) -> Iterator[date]:
        """Working days strictly after ``day`` (that have periods), in order; stops after ~50 years."""
        for offset in range(1, 366 * 50):
            candidate = day + timedelta(days=offset)
            if self.periods_of(candidate):
                yield candidate

    def periods_from(self, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working periods at or after ``instant``, in order, the first clipped to start at it.
        Periods that touch (a round-the-clock unit's midnight) are yielded one by one."""
        day = self.local_date(instant) - timedelta(days=1)  # a period may start the local day before in UTC
        for offset in range(366 * 50):
            for start, end in self.utc_periods(day + timedelta(days=offset)):
                if end <= instant:
                    continue
                yield max(start, instant), end
        raise ValueError("no working time within 50 years: check the calendar")

    # -- the snapshot -----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-ready dict (the case snapshot's ``calendar``); ``from_dict`` reads it back."""
        data = {"time_zone": self.time_zone, "hours": format_hours(self.hours), "region": self.region,
                "extra_holidays": sorted(d.isoformat() for d in self.extra_holidays),
                "extra_workdays": sorted(d.isoformat() for d in self.extra_workdays)}
        if self.statutory:
            data["statutory"] = True
        if self.round_the_clock:
            data["round_the_clock"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> WorkingCalendar:
        """Inverse of ``to_dict``; ``hours`` keys are weekday names (``mon``) and periods ``"08:30-12:00"``.
        Snapshots written before ``statutory`` and ``round_the_clock`` existed read as neither."""
        hours = data.get("hours")
        by_day = ({WEEKDAYS.index(k): parse_periods(v) for k, v in hours.items()} if hours is not None
                  else {d: DEFAULT_PERIODS for d in range(5)})
        return cls(data.get("time_zone", "UTC"), by_day, data.get("region"),
                   frozenset(date.fromisoformat(d) for d in data.get("extra_holidays", ())),
                   frozenset(date.fromisoformat(d) for d in data.get("extra_workdays", ())),
                   bool(data.get("statutory", False)), bool(data.get("round_the_clock", False)))


def _instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """Local ``day`` at ``minute`` since midnight (1440: the next midnight) as an aware UTC instant."""
    if minute == DAY_MINUTES:
        day, minute = day + timedelta(days=1), 0
    return datetime.combine(day, time(minute // 60, minute % 60), zone).astimezone(UTC)


@functools.lru_cache(maxsize=8192)
def _utc_periods(calendar: WorkingCalendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """``WorkingCalendar.utc_periods``, remembered: every deadline and every statistics row walks the
    same few weeks of days, and a day's holiday lookup cost a quarter of opening a case (cProfile,
    5,000 cases) when it checked a whole table."""
    zone = calendar.zone
    return tuple((_instant(day, a, zone), _instant(day, b, zone)) for a, b in calendar.periods_of(day))


def _forget() -> None:
    """Forget remembered periods and deadlines: the official calendar changed."""
    _utc_periods.cache_clear()
    for forget in _ON_CHANGE:
        forget()
