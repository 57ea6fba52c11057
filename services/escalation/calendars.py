"""The working calendars of the city and its units, built once per process from the settings (the
city's time zone and holiday region) and the policy's ``[calendar]`` (working periods, per-unit
overrides). Escalation copies the calendar of a case's most specific owner into the case's frozen
``TimePolicy`` when it opens, with the rule of its category × severity."""
from __future__ import annotations

from services.escalation.domain.calendar import WorkingCalendar, known_region, parse_periods
from services.escalation.domain.deadlines import Limit, TimePolicy
from shared.config import Settings
from shared.owners import Owners
from shared.policy import WEEKDAYS, Amount, CalendarSpec, Policy, Rule


class Calendars:
    """``for_owners(owners)`` → the ``WorkingCalendar`` of a case's owners: the calendar of its most
    specific owner (grid, then station, then sub-center) that has a ``[[calendar.units]]`` entry,
    else the city's."""

    def __init__(self, spec: CalendarSpec, time_zone: str, region: str | None):
        """ValueError for a holiday region no data package knows (``CN``, ``DE-BE``, … are known)."""
        if not known_region(region):
            raise ValueError(f"no public holidays are known for the region {region!r}")
        self.city = WorkingCalendar(time_zone, _hours(spec.hours), region)
        self.units = {
            area: WorkingCalendar(time_zone, _hours(unit.hours) if unit.hours else self.city.hours, region,
                                  frozenset(unit.extra_holidays), frozenset(unit.extra_workdays))
            for area, unit in spec.units.items()}

    @classmethod
    def of(cls, settings: Settings, policy: Policy) -> Calendars:
        """The calendars of a process: the settings' time zone and holiday region (``GRIDCASE_HOLIDAYS``,
        else the policy's ``[calendar] region``) with the policy's working periods and unit overrides."""
        return cls(policy.calendar, settings.time_zone, settings.holidays or policy.calendar.region)

    def for_owners(self, owners: Owners) -> WorkingCalendar:
        """The calendar of a case owned by ``owners``."""
        for area_id in owners.scope().values():
            if area_id in self.units:
                return self.units[area_id]
        return self.city


def _hours(hours: dict[str, list[str]]) -> dict[int, tuple]:
    return {WEEKDAYS.index(day): parse_periods(periods) for day, periods in hours.items() if periods}


def _limit(amount: Amount) -> Limit:
    return Limit(amount.amount, amount.unit)


def time_policy(rule: Rule, calendar: WorkingCalendar) -> TimePolicy:
    """The frozen snapshot of one category × severity rule in a calendar."""
    return TimePolicy(tuple(_limit(rule.levels[level]) for level in (1, 2, 3, 4)), _limit(rule.verification),
                      rule.max_extensions, _limit(rule.max_extension_total), tuple(rule.warnings), calendar,
                      _limit(rule.department))
