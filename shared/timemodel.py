"""The time model's one home: the units a time limit is written in, its bounds, weekdays and working
periods, and the city's official calendar files. The policy file (``shared/policy.py``), the working
calendar (``services/escalation/domain/calendar.py``) and the deadline arithmetic
(``services/escalation/domain/deadlines.py``) all read them from here, so ``gridcase policy check`` and
a starting service accept exactly the same values.

**Units** (the README's "rules of the time model"):

- ``seconds``, ``minutes``, ``hours``: elapsed time on the UTC line (nights, holidays and daylight saving
  count). ``hours`` is the standard's 紧急工作时 (urgent hours, around the clock); ``seconds`` is for tests.
- ``working_hours`` (工作时): only the working periods of working days count.
- ``working_days`` (工作日): the start day does not count; the deadline is the close of the N-th working
  day after it (Civil Code arts. 201, 203).

**Bounds**: a limit is positive, finite and at most a year (``MAX_LIMIT``: 366 days, 8,784 hours or
working hours — a round-the-clock unit's year — or 366 working days). A deadline is a promise to the
people who reported; one longer than a year is a policy error, and the bound also bounds the arithmetic
(a working-day deadline walks the calendar a day at a time). ``Limit`` itself refuses more than
``HARD_CEILING_SECONDS`` (ten years), so no stored or requested amount can overflow a date.

**Windows** (an early-warning rule's look-back, ``parse_window``) are elapsed time only — ``minutes``,
``hours``, ``days`` (24 hours) — at most a year: a burst of reports happens at night and on holidays too.

**Working periods** are local wall time ``"HH:MM-HH:MM"`` with ``24:00`` allowed as an end (midnight
closing a day: ``"00:00-24:00"`` is a whole day), held as minutes since local midnight (0–1440).

**Official calendar files**: the days off and swapped working days (调休上班日) of one year, as the
authority publishes them (for China, the State Council's yearly notice, 国务院办公厅关于部分节假日安排
的通知), one TOML file per year named ``<year>.toml`` in a city's ``holidays/`` folder, or, for a city
without one, in ``shared/holidays/<REGION>/`` (the demo city's). A city adds next year's file when the
notice appears; ``read_year_file`` names ``FILE:LINE`` for a problem. Format::

    region = "CN"
    year = 2026
    source = "国务院办公厅关于2026年部分节假日安排的通知"

    [[holidays]]
    name = "元旦"                 # optional: en = "New Year's Day"
    off = [2026-01-01, 2026-01-02, 2026-01-03]
    work = [2026-01-04]           # swapped working days: a Saturday or a Sunday worked
"""
from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from shared.words import Invalid, LocatedError, Message, word

#: Calendar units and their length in seconds.
UNIT_SECONDS: dict[str, int] = {"seconds": 1, "minutes": 60, "hours": 3600}
#: Working-time units: counted in a working calendar.
WORKING_UNITS: tuple[str, ...] = ("working_hours", "working_days")
UNITS: tuple[str, ...] = (*UNIT_SECONDS, *WORKING_UNITS)
#: Nominal lengths of working units, for comparing amounts against caps only (never for deadlines):
#: a working hour is an hour, a working day is a day.
NOMINAL_SECONDS: dict[str, int] = {**UNIT_SECONDS, "working_hours": 3600, "working_days": 86400}
#: The longest limit a policy may set, per unit: a year (see the module's "Bounds").
MAX_LIMIT: dict[str, float] = {"seconds": 366 * 86400, "minutes": 366 * 1440, "hours": 366 * 24,
                               "working_hours": 366 * 24, "working_days": 366}
#: What any ``Limit`` may hold, however it was made (a stored snapshot, an extension request): ten years.
HARD_CEILING_SECONDS = 10 * 366 * 86400
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
#: At most this many working periods in a day, dates in one list, and holidays in one year's file.
MAX_PERIODS = 24
MAX_DATES = 1000
MAX_HOLIDAYS = 100
#: Where the calendar files of a city without its own ``holidays/`` folder are (the demo city's).
PACKAGED_HOLIDAYS = Path(__file__).with_name("holidays")
REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")

Period = tuple[int, int]  # (start, end) in minutes since local midnight, 0 <= start < end <= 1440

_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z_]+)\s*$")
_PERIOD = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


@dataclass(frozen=True)
class Limit:
    """An amount of time in a unit: ``Limit(4, "hours")``, ``Limit(3, "working_days")``.
    ``amount`` is finite, non-negative and at most ``HARD_CEILING_SECONDS`` long (nominally);
    ``unit`` one of ``UNITS``. ValueError otherwise."""

    amount: float
    unit: str = "hours"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise Invalid("time.unknown_unit", unit=repr(self.unit), choices=", ".join(UNITS))
        if isinstance(self.amount, bool) or not isinstance(self.amount, int | float):
            raise Invalid("time.limit_not_a_number", value=repr(self.amount))
        if not (math.isfinite(self.amount) and self.amount >= 0):  # refuses NaN and infinity
            raise Invalid("time.limit_not_finite", value=repr(self.amount))
        if self.amount * NOMINAL_SECONDS[self.unit] > HARD_CEILING_SECONDS:
            raise Invalid("time.limit_over_ten_years", amount=f"{self.amount:g}", unit=word("unit", self.unit))

    @property
    def working(self) -> bool:
        """Whether the limit counts working time (in a calendar) rather than elapsed time."""
        return self.unit in WORKING_UNITS

    @property
    def seconds(self) -> float:
        """The length in seconds: exact for calendar units, nominal for working units (for caps)."""
        return self.amount * NOMINAL_SECONDS[self.unit]

    def to_dict(self) -> dict:
        return {"amount": self.amount, "unit": self.unit}

    @classmethod
    def from_dict(cls, data: Mapping | float | int) -> Limit:
        """From ``{"amount": 4, "unit": "hours"}``; a bare number is hours (the pre-snapshot ``hours`` column)."""
        if isinstance(data, Mapping):
            return cls(float(data["amount"]), data.get("unit", "hours"))
        return cls(float(data), "hours")


def parse_limit(value: object) -> Limit:
    """A policy's time limit: ``"4 working_hours"``, ``{amount = 4, unit = "hours"}`` or a bare number of
    hours; positive and at most ``MAX_LIMIT[unit]``. ValueError (its message names the value) otherwise."""
    if isinstance(value, bool):
        raise Invalid("time.not_a_limit", value=repr(value))
    if isinstance(value, int | float):
        amount, unit = float(value), "hours"
    elif isinstance(value, Mapping):
        amount, unit = value.get("amount"), value.get("unit", "hours")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise Invalid("time.not_a_limit", value=repr(value))
        amount = float(amount)
    elif isinstance(value, str) and (m := _LIMIT.match(value)):
        amount, unit = float(m.group(1)), m.group(2)
    else:
        raise Invalid("time.not_a_limit_written", value=repr(value))
    if unit not in UNITS:
        raise Invalid("time.unknown_unit_in", unit=repr(unit), value=repr(value), choices=", ".join(UNITS))
    if not math.isfinite(amount):
        raise Invalid("time.limit_infinite", value=repr(value))
    if not amount > 0:
        raise Invalid("time.limit_not_positive", value=repr(value))
    if amount > MAX_LIMIT[unit]:
        raise Invalid("time.limit_over_a_year", value=repr(value), max=f"{MAX_LIMIT[unit]:g}", unit=word("unit", unit))
    return Limit(amount, unit)


#: The units a look-back window is written in (an early-warning rule's ``window``): elapsed time only,
#: since a cluster of reports happens at night and on holidays too; ``days`` are 24 hours each.
WINDOW_SECONDS: dict[str, int] = {**UNIT_SECONDS, "days": 86400}
#: The longest window: a year, as the longest limit.
MAX_WINDOW_SECONDS = 366 * 86400


def parse_window(value: object) -> float:
    """A look-back window, ``"24 hours"``, ``"90 days"``, ``"30 minutes"`` (or a bare number of hours) →
    its length in seconds: positive and at most a year (``MAX_WINDOW_SECONDS``). A working unit is
    refused (a window counts every hour); ValueError naming the value otherwise."""
    if isinstance(value, bool):
        raise Invalid("time.not_a_window", value=repr(value))
    if isinstance(value, int | float):
        amount, unit = float(value), "hours"
    elif isinstance(value, str) and (m := _LIMIT.match(value)):
        amount, unit = float(m.group(1)), m.group(2)
    else:
        raise Invalid("time.not_a_window_written", value=repr(value))
    if unit in WORKING_UNITS:
        raise Invalid("time.window_working", units=", ".join(WINDOW_SECONDS), unit=unit, value=repr(value))
    if unit not in WINDOW_SECONDS:
        raise Invalid("time.unknown_unit_in", unit=repr(unit), value=repr(value), choices=", ".join(WINDOW_SECONDS))
    if not math.isfinite(amount) or not amount > 0:
        raise Invalid("time.window_not_positive", value=repr(value))
    seconds = amount * WINDOW_SECONDS[unit]
    if seconds > MAX_WINDOW_SECONDS:
        raise Invalid("time.window_over_a_year", value=repr(value))
    return seconds


# -- weekdays and working periods ---------------------------------------------------------------------

def parse_period(item: object) -> Period:
    """``"08:30-12:00"`` (spaces ignored; ``24:00`` only as an end) → ``(510, 720)`` minutes since local
    midnight. ValueError for a malformed time or a period that does not end after it starts."""
    m = _PERIOD.match(item.replace(" ", "")) if isinstance(item, str) else None
    if not m:
        raise Invalid("time.not_a_period", value=repr(item))
    (h1, m1, h2, m2) = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise Invalid("time.not_a_time_of_day", value=repr(item))
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not start < end:
        raise Invalid("time.period_backwards", value=repr(item))
    return start, end


def parse_periods(value: object) -> tuple[Period, ...]:
    """``["08:30-12:00", "13:00-17:30"]`` → ordered periods; ValueError for a malformed or overlapping
    one, or more than ``MAX_PERIODS``. Periods that touch (``"00:00-12:00", "12:00-24:00"``) are fine."""
    if not isinstance(value, list | tuple):
        raise Invalid("time.hours_not_a_list")
    if len(value) > MAX_PERIODS:
        raise Invalid("time.too_many_periods", max=MAX_PERIODS, count=len(value))
    periods = sorted(parse_period(item) for item in value)
    if any(nxt[0] < cur[1] for cur, nxt in zip(periods, periods[1:], strict=False)):
        raise Invalid("time.periods_overlap", value=repr(list(value)))
    return tuple(periods)


def format_period(period: Period) -> str:
    """``(510, 1440)`` → ``"08:30-24:00"``."""
    (a, b) = period
    return f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}"


def weekday(name: object) -> int:
    """``"mon"`` → 0 … ``"sun"`` → 6; ValueError otherwise."""
    if name not in WEEKDAYS:
        raise Invalid("time.unknown_weekday", name=repr(name), choices=", ".join(WEEKDAYS))
    return WEEKDAYS.index(name)


def parse_hours(raw: object) -> dict[int, tuple[Period, ...]]:
    """``{mon = ["08:30-12:00", …], …}`` → weekday index (0 = Monday) → periods. A weekday left out, or
    given ``[]``, is not worked. ValueError if no weekday is worked."""
    if not isinstance(raw, Mapping):
        raise Invalid("time.hours_not_a_table")
    hours = {weekday(day): parse_periods(periods) for day, periods in raw.items()}
    hours = {day: periods for day, periods in sorted(hours.items()) if periods}
    if not hours:
        raise Invalid("time.no_working_day")
    return hours


def format_hours(hours: Mapping[int, tuple[Period, ...]]) -> dict[str, list[str]]:
    """The inverse of ``parse_hours``: ``{"mon": ["08:30-12:00", …]}``."""
    return {WEEKDAYS[d]: [format_period(p) for p in periods] for d, periods in sorted(hours.items()) if periods}


def parse_dates(value: object, key: str) -> tuple[date, ...]:
    """A list of dates (TOML dates or ISO strings) → sorted, distinct; at most ``MAX_DATES``."""
    if not isinstance(value, list | tuple):
        raise Invalid("time.dates_not_a_list", key=key)
    if len(value) > MAX_DATES:
        raise Invalid("time.too_many_dates", key=key, max=MAX_DATES, count=len(value))
    out = set()
    for item in value:
        if isinstance(item, date) and not hasattr(item, "hour"):
            out.add(item)
            continue
        try:
            if not isinstance(item, str):
                raise ValueError
            out.add(date.fromisoformat(item))
        except ValueError:
            raise Invalid("time.not_a_date", key=key, value=repr(item)) from None
    return tuple(sorted(out))


# -- official calendar files ----------------------------------------------------------------------------

class CalendarFileError(LocatedError):
    """A calendar file that cannot be used: ``problem`` (a catalogue message: ``code`` with ``params``, or a
    ``Message``) on ``line`` of ``file``; ``str()`` is ``FILE:LINE: problem`` (or ``FILE: problem``) in
    English, ``text(lang)`` the same in ``lang`` (the catalogue's ``policy.at_line``)."""

    def __init__(self, problem: str | Message, file: str, line: int | None = None, /, **params):
        super().__init__(problem if isinstance(problem, Message) else Message(problem, params), file, line)


@dataclass(frozen=True)
class OfficialYear:
    """One year's official days off and swapped working days for a region, from its file."""

    region: str
    year: int
    days_off: frozenset[date]
    workdays: frozenset[date]
    source: str
    file: str

    def status(self, day: date) -> bool | None:
        """False on a day off, True on a swapped working day, None on any other day of the year."""
        if day in self.days_off:
            return False
        if day in self.workdays:
            return True
        return None


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line.split("#", 1)[0]:
            return number
    return None


def toml_position(error: tomllib.TOMLDecodeError) -> tuple[int | None, int | None]:
    """(line, column) of a TOML syntax error (1-based; None when the parser did not say): the facts a reader
    needs, without the parser's English sentence."""
    line = getattr(error, "lineno", None)
    column = getattr(error, "colno", None)
    if line is None:  # Python before 3.14: the position is only in the message, "(at line 3, column 9)"
        found = re.search(r"line (\d+), column (\d+)", str(error))
        line, column = (int(found[1]), int(found[2])) if found else (None, None)
    return line, column


def read_year_file(path: str | Path, region: str | None = None) -> OfficialYear:
    """Read and check one year's file (see the module docstring); ``region``, when given, must be the
    file's. ``CalendarFileError`` naming the line: not TOML, a missing or unknown key, a date outside
    the file's year, a date listed twice, a swapped working day that is not a Saturday or Sunday."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError):
        raise CalendarFileError("calendar.unreadable", file) from None
    except tomllib.TOMLDecodeError as exc:
        line, column = toml_position(exc)
        raise CalendarFileError("policy.not_toml", file, line, column=column) from None
    unknown = set(data) - {"region", "year", "source", "holidays"}
    if unknown:
        key = sorted(unknown)[0]
        raise CalendarFileError("calendar.unknown_key", file, _line_of(text, key), key=repr(key))
    found = data.get("region")
    if not isinstance(found, str) or not REGION.match(found):
        raise CalendarFileError("policy.region", file, _line_of(text, "region"), region=repr(found))
    if region is not None and found != region:
        raise CalendarFileError("calendar.other_region", file, _line_of(text, "region"), found=found, region=region)
    year = data.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2200:
        raise CalendarFileError("calendar.year", file, _line_of(text, "year"), year=repr(year))
    if path.stem.isdigit() and int(path.stem) != year:
        raise CalendarFileError("calendar.file_name", file, _line_of(text, "year"), year=year)
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise CalendarFileError("calendar.source", file, _line_of(text, "source"))
    entries = data.get("holidays", [])
    if not isinstance(entries, list) or len(entries) > MAX_HOLIDAYS:
        raise CalendarFileError("calendar.holidays_list", file, _line_of(text, "holidays"), max=MAX_HOLIDAYS)
    off: dict[date, str] = {}
    work: dict[date, str] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise CalendarFileError("calendar.holiday_name", file, _line_of(text, "[[holidays]]"))
        at = _line_of(text, f'"{name}"')
        extra = set(entry) - {"name", "en", "off", "work"}
        if extra:
            raise CalendarFileError("calendar.unknown_holiday_key", file, at, name=name, key=repr(sorted(extra)[0]))
        for key, into in (("off", off), ("work", work)):
            try:
                days = parse_dates(entry.get(key, []), f"{name}: {key}")
            except Invalid as exc:
                raise CalendarFileError(exc.message, file, at) from None
            for day in days:
                where = _line_of(text, day.isoformat()) or at
                if day.year != year:
                    raise CalendarFileError("calendar.not_in_year", file, where, name=name, day=str(day), year=year)
                if day in off or day in work:
                    raise CalendarFileError("calendar.twice", file, where, name=name, day=str(day))
                if key == "work" and day.weekday() < 5:
                    raise CalendarFileError("calendar.swapped_weekday", file, where, name=name, day=str(day),
                                            weekday=WEEKDAYS[day.weekday()])
                into[day] = name
    return OfficialYear(found, year, frozenset(off), frozenset(work), source.strip(), file)


def read_year_folder(folder: str | Path | None, region: str | None = None) -> dict[int, OfficialYear]:
    """Every ``<year>.toml`` in ``folder`` (none if it does not exist), by year. Other files are ignored;
    the first file that does not hold raises ``CalendarFileError``."""
    if folder is None or not Path(folder).is_dir():
        return {}
    years = {}
    for path in sorted(Path(folder).glob("*.toml")):
        if path.stem.isdigit():
            official = read_year_file(path, region)
            years[official.year] = official
    return years


@functools.lru_cache(maxsize=32)
def packaged_years(region: str) -> dict[int, OfficialYear]:
    """The calendar files shipped with gridcase for ``region`` (``shared/holidays/<REGION>/``)."""
    return read_year_folder(PACKAGED_HOLIDAYS / region, region)


def holiday_folder(city: str | None, region: str | None) -> Path | None:
    """Where a city's official calendar files are: its folder's ``holidays/`` when the city is a folder
    that has one, else the packaged files of its region (``shared/holidays/<REGION>/``), else None."""
    if city and city != "demo" and (Path(city) / "holidays").is_dir():
        return Path(city) / "holidays"
    if region and (PACKAGED_HOLIDAYS / region).is_dir():
        return PACKAGED_HOLIDAYS / region
    return None
