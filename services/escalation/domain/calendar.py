"""The city's working calendar: which local days are working days and which local wall-clock
periods of them count as working time. Plain Python; ``deadlines.py`` is its only caller for
arithmetic, and the rest of gridcase reaches working time through ``deadlines``.

Rules (issue 10, "Rules of the time model"):

- A **working day** is Monday–Friday not in the holiday list, plus the swapped working days
  (调休上班日, China: a Saturday or Sunday worked to bridge a holiday), which use Monday's periods.
- **Holidays and swapped days** come from a maintained data package per region: ``CN`` from
  ``chinese-calendar`` (the State Council's yearly notice, 国务院办公厅关于节假日安排的通知);
  any other region code (``DE-BE``: country, then an optional subdivision) from ``holidays``.
  Beyond the years a package knows, a day is a working day when it is Monday–Friday.
  ``extra_holidays`` and ``extra_workdays`` override both (a unit's own days, a late notice).
- **Periods** are local wall time in the calendar's IANA time zone, converted to UTC per day, so
  a daylight-saving change moves the UTC instants and never the length of a working period.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The default working periods of a working day (the demo city's offices: 8 working hours).
DEFAULT_PERIODS: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 0), time(17, 30)))

Period = tuple[time, time]


def parse_periods(value: object) -> tuple[Period, ...]:
    """``["08:30-12:00", "13:00-17:30"]`` (or ``[["08:30", "12:00"], ...]``) → ordered local periods.
    ValueError for a malformed, empty, reversed or overlapping period."""
    periods = []
    for item in value or ():
        start, end = item.split("-") if isinstance(item, str) else item
        a, b = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
        if not a < b:
            raise ValueError(f"a working period must end after it starts: {item!r}")
        periods.append((a, b))
    periods.sort()
    for (_, end), (start, _) in zip(periods, periods[1:], strict=False):
        if start < end:
            raise ValueError("working periods overlap")
    return tuple(periods)


def _format(periods: tuple[Period, ...]) -> list[str]:
    return [f"{a:%H:%M}-{b:%H:%M}" for a, b in periods]


@functools.lru_cache(maxsize=64)
def _holiday_source(region: str):
    """(is_working_day(date) -> bool | None) for a region; None means "the package does not know"."""
    if region == "CN":
        import chinese_calendar

        def china(day: date) -> bool | None:
            try:
                return chinese_calendar.is_workday(day)
            except NotImplementedError:  # a year the package does not cover yet
                return None
        return china
    import holidays

    country, _, subdiv = region.partition("-")
    table = holidays.country_holidays(country, subdiv=subdiv or None)

    def other(day: date) -> bool | None:
        return day.weekday() < 5 and day not in table
    return other


def known_region(region: str | None) -> bool:
    """Whether ``region`` names a holiday source (``CN``, ``DE``, ``DE-BE``, … or None for none)."""
    if region is None:
        return True
    try:
        _holiday_source(region)(date(2026, 1, 1))
        return True
    except Exception:  # noqa: BLE001 - the holidays package raises its own errors for unknown codes
        return False


@dataclass(frozen=True)
class WorkingCalendar:
    """A city's (or a unit's) working calendar. ``hours`` maps a weekday (0 = Monday) to its local
    working periods; a weekday without periods is not worked (unless a swapped working day, which
    uses Monday's). ``region`` names the holiday source (None: no public holidays)."""

    time_zone: str = "UTC"
    hours: Mapping[int, tuple[Period, ...]] = field(
        default_factory=lambda: {d: DEFAULT_PERIODS for d in range(5)})
    region: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # raises for an unknown zone
        if not any(self.hours.get(d) for d in range(7)):
            raise ValueError("a working calendar needs working periods on at least one weekday")
        object.__setattr__(self, "_hash", hash((self.time_zone, tuple(sorted(self.hours.items())), self.region,
                                                self.extra_holidays, self.extra_workdays)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.time_zone)

    # -- days -------------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        """Overrides first, then the region's holidays and swapped days, then Monday–Friday."""
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if self.region is not None:
            known = _holiday_source(self.region)(day)
            if known is not None:
                return known
        return day.weekday() < 5

    def periods_of(self, day: date) -> tuple[Period, ...]:
        """The local working periods of ``day``: none on a day off; Monday's on a swapped working day."""
        if not self.is_working_day(day):
            return ()
        return self.hours.get(day.weekday()) or self.hours.get(0) or ()

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
        """The working periods at or after ``instant``, in order, the first clipped to start at it."""
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
        return {"time_zone": self.time_zone,
                "hours": {WEEKDAYS[d]: _format(p) for d, p in sorted(self.hours.items()) if p},
                "region": self.region,
                "extra_holidays": sorted(d.isoformat() for d in self.extra_holidays),
                "extra_workdays": sorted(d.isoformat() for d in self.extra_workdays)}

    @classmethod
    def from_dict(cls, data: Mapping) -> WorkingCalendar:
        """Inverse of ``to_dict``; ``hours`` keys are weekday names (``mon``) and periods ``"08:30-12:00"``."""
        hours = data.get("hours")
        by_day = ({WEEKDAYS.index(k): parse_periods(v) for k, v in hours.items()} if hours is not None
                  else {d: DEFAULT_PERIODS for d in range(5)})
        return cls(data.get("time_zone", "UTC"), by_day, data.get("region"),
                   frozenset(date.fromisoformat(d) for d in data.get("extra_holidays", ())),
                   frozenset(date.fromisoformat(d) for d in data.get("extra_workdays", ())))


@functools.lru_cache(maxsize=8192)
def _utc_periods(calendar: WorkingCalendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """``WorkingCalendar.utc_periods``, remembered: every deadline and every statistics row walks the
    same few weeks of days, and a day's holiday lookup (``chinese_calendar.is_workday`` checks the
    date against its whole table) cost a quarter of opening a case (cProfile, 5,000 cases)."""
    zone = calendar.zone
    return tuple((datetime.combine(day, a, zone).astimezone(UTC), datetime.combine(day, b, zone).astimezone(UTC))
                 for a, b in calendar.periods_of(day))
