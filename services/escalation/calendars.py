"""The working calendars of the city and its units, built once per process from the settings (the
city's time zone, holiday region and folder), the city's official calendar files and the policy's
``[calendar]``. Escalation copies the calendar of a case's owners into the case's frozen
``TimePolicy`` when it opens, with the rule of its category × severity.

- **Official files**: ``<city folder>/holidays/<year>.toml``, or for a city without that folder (the
  demo city) ``shared/holidays/<REGION>/`` (``shared.timemodel.holiday_folder``), installed as the
  region's official calendar for the process.
- **Inheritance down the area tree**: the city's ``[calendar]`` overrides apply to every case; a
  ``[[calendar.units]]`` entry for a sub-center applies to its stations and grids, one for a station to
  its grids. Walking from the city down to a case's grid, each entry adds its extra days off and
  working days to those above it (a date it lists the other way round overrides the ancestor's), and
  its ``hours`` or ``round_the_clock`` replace the ancestor's.
- **Coverage**: ``Coverage`` says until when the official files reach, and what ``gridcase policy
  check`` (an error once a date is beyond every source), the start-up log (a warning) and ``/readyz``
  (``detail.calendar``) say about it from ``WARN_DAYS`` before the end.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from services.escalation.domain.calendar import WorkingCalendar, install_official, known_region, official_years
from services.escalation.domain.deadlines import TimePolicy
from shared.config import Settings
from shared.owners import Owners
from shared.policy import CalendarSpec, Policy, Rule, UnitCalendar
from shared.timemodel import OfficialYear, holiday_folder, read_year_folder
from shared.words import Invalid

log = logging.getLogger("gridcase")
#: How long before the official calendar files end the start-up log and ``/readyz`` warn.
WARN_DAYS = 30
#: Where a region's official holidays of a year are published, for the warning that asks for the file.
NOTICES = {"CN": "the State Council's notice 国务院办公厅关于{year}年部分节假日安排的通知, published each November "
                 "or December"}
#: The area levels from the top down: the order overrides are inherited in.
CHAIN = ("hq", "subcenter", "station", "grid")


@dataclass(frozen=True)
class Coverage:
    """Which dates a city's holiday sources cover: the ``years`` with an official file (in ``folder``),
    and whether other years fall back on statutory rules (``statutory_fallback``, provisional)."""

    region: str | None
    folder: str | None
    years: tuple[int, ...]
    statutory_fallback: bool

    def official_until(self, today: date) -> date | None:
        """The last day of the run of official years that holds ``today`` (None: today has no file)."""
        if today.year not in self.years:
            return None
        year = today.year
        while year + 1 in self.years:
            year += 1
        return date(year, 12, 31)

    def report(self, today: date) -> dict:
        """What ``/readyz`` shows under ``detail.calendar``: ``{"region", "folder", "official_years",
        "official_until", "days_left", "statutory_fallback", "status", "message"}``. ``status`` is
        ``ok``, ``ending`` (the official files end within ``WARN_DAYS`` days: a loud warning),
        ``provisional`` (today is past them; statutory rules stand in) or ``gap`` (today is beyond every
        source: an error for ``gridcase policy check``)."""
        until = self.official_until(today)
        body = {"region": self.region, "folder": self.folder, "official_years": list(self.years),
                "official_until": until.isoformat() if until else None,
                "days_left": (until - today).days if until else None,
                "statutory_fallback": self.statutory_fallback}
        if self.region is None:
            return {**body, "status": "ok", "message": "no holiday region: every weekday with hours is worked"}
        folder = self.folder or "holidays"
        notice = NOTICES.get(self.region, "the official notice of {year}'s holidays and swapped working days")
        add = (f"add {folder}/{{year}}.toml, transcribed from {notice} (the files beside it show the format), then run "
               f"`gridcase policy check --until {{year}}-12-31` and restart")
        if until is None and not self.statutory_fallback:
            return {**body, "status": "gap",
                    "message": f"no holiday source covers {today} ({self.region}: official files for "
                               f"{_years(self.years)}; statutory_fallback is off): working-time deadlines are "
                               f"flagged calendar_gap; {add.format(year=today.year)}"}
        if until is None:
            return {**body, "status": "provisional",
                    "message": f"no official calendar file for {today.year} ({self.region}): deadlines use "
                               f"statutory holidays without swapped working days and are marked provisional; "
                               f"{add.format(year=today.year)}"}
        if (until - today).days <= WARN_DAYS:
            after = until + timedelta(days=1)
            then = (f"from {after} every one is, and `gridcase policy check` fails (an error) until the file is there"
                    if not self.statutory_fallback else
                    f"from {after} every one is (statutory holidays without swapped working days), never an error")
            marked = "provisional" if self.statutory_fallback else "flagged calendar_gap"
            return {**body, "status": "ending",
                    "message": f"the official calendar files ({self.region}) end on {until}, in "
                               f"{(until - today).days} days: {add.format(year=after.year)}. Until then a "
                               f"working-time deadline that runs past {until} is {marked}; {then}"}
        return {**body, "status": "ok", "message": f"official calendar files until {until}"}


def _years(years: tuple[int, ...]) -> str:
    return ", ".join(str(y) for y in years) or "no year"


class Calendars:
    """``for_owners(owners)`` → the ``WorkingCalendar`` of a case's owners: the city's, with the
    overrides of its sub-center, station and grid inherited in that order (see the module)."""

    def __init__(self, spec: CalendarSpec, time_zone: str, region: str | None,
                 official: Mapping[int, OfficialYear] | None = None, folder: str | Path | None = None):
        """ValueError for a holiday region the ``holidays`` package does not know (``CN``, ``DE-BE``
        are known). ``official`` (by year), when given, becomes the region's official calendar in this
        process; otherwise the packaged files of the region are used."""
        if not known_region(region):
            raise Invalid("policy.unknown_region", region=repr(region))
        if region is not None and official is not None:
            install_official(region, official)
        self.spec, self.time_zone, self.region = spec, time_zone, region
        years = tuple(sorted(official_years(region))) if region else ()
        folder = folder or (holiday_folder(None, region) if region else None)
        self.coverage = Coverage(region, str(folder) if folder else None, years, spec.statutory_fallback)
        self.units = spec.units
        self._memo: dict[tuple, WorkingCalendar] = {}
        self.city = self._inherit((spec.city,))

    @classmethod
    def of(cls, settings: Settings, policy: Policy) -> Calendars:
        """The calendars of a process: the settings' time zone and holiday region (``GRIDCASE_HOLIDAYS``,
        else the policy's ``[calendar] region``), the official files of the city (``settings.city``'s
        ``holidays/`` folder, else the packaged ones of the region), the policy's working periods and
        overrides. ValueError (``FILE:LINE: problem``) for a calendar file that does not hold."""
        region = settings.holidays or policy.calendar.region
        folder = holiday_folder(settings.city, region)
        official = read_year_folder(folder, region) if region else {}
        return cls(policy.calendar, settings.time_zone, region, official, folder)

    def for_owners(self, owners: Owners) -> WorkingCalendar:
        """The calendar of a case owned by ``owners``."""
        ids = tuple(ref.id for name in CHAIN if (ref := getattr(owners, name)) and ref.id in self.units)
        if ids not in self._memo:
            self._memo[ids] = self._inherit((self.spec.city, *(self.units[i] for i in ids)))
        return self._memo[ids]

    def _inherit(self, chain: tuple[UnitCalendar, ...]) -> WorkingCalendar:
        hours, round_the_clock = self.spec.hours, False
        holidays: set[date] = set()
        workdays: set[date] = set()
        for entry in chain:
            if entry.hours is not None:
                hours, round_the_clock = entry.hours, False
            if entry.round_the_clock is not None:
                round_the_clock = entry.round_the_clock
            holidays.difference_update(entry.extra_workdays)
            workdays.difference_update(entry.extra_holidays)
            holidays.update(entry.extra_holidays)
            workdays.update(entry.extra_workdays)
        return WorkingCalendar(self.time_zone, hours, self.region, frozenset(holidays), frozenset(workdays),
                               self.spec.statutory_fallback, round_the_clock)

    def warn(self, today: date) -> dict:
        """Log the coverage report loudly (a warning) unless it is ``ok``; the report."""
        report = self.coverage.report(today)
        if report["status"] != "ok":
            log.warning("CALENDAR %s: %s", report["status"].upper(), report["message"])
        return report


def time_policy(rule: Rule, calendar: WorkingCalendar) -> TimePolicy:
    """The frozen snapshot of one category × severity rule in a calendar."""
    return TimePolicy(tuple(rule.levels[level] for level in (1, 2, 3, 4)), rule.verification,
                      rule.max_extensions, rule.max_extension_total, tuple(rule.warnings), calendar,
                      tuple(sorted(rule.level_warnings.items())), department_limit=rule.department,
                      urge_response=rule.urge_response, acceptance_limit=rule.acceptance,
                      suspend_without_approval=rule.suspend_without_approval)
