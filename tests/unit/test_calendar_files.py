"""Calendars as the city's data: the official days off and swapped working days are files per year
(``holidays/<year>.toml``); a date no file covers is never silently a working day (statutory rules only
where the city opted in, marked provisional; otherwise a ``calendar_gap`` on the deadline, an error at
``gridcase policy check`` and a warning at start-up); overrides for the whole city inherited down the
area tree; ``24:00`` and round-the-clock units, accepted alike by the check and a starting service."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays as holidays_package
import pytest
from click.testing import CliRunner

from gridcase.cli import main
from harness.processes import ROOT
from services.escalation import bootstrap
from services.escalation.calendars import Calendars, Coverage
from services.escalation.domain.calendar import WorkingCalendar, install_official, parse_periods
from services.escalation.domain.cases import open_case
from services.escalation.domain.deadlines import Limit, TimePolicy, deadline, deadline_basis
from shared.clock import FakeClock
from shared.config import Settings
from shared.owners import Owners
from shared.policy import DEFAULT_FILE, PolicyError, load_policy, parse_policy
from shared.timemodel import (
    PACKAGED_HOLIDAYS,
    CalendarFileError,
    holiday_folder,
    packaged_years,
    read_year_file,
    read_year_folder,
)
from tests.support.cases import OWNERS

GOOD = DEFAULT_FILE.read_text(encoding="utf-8")
BERLIN_FOLDER = ROOT / "examples" / "berlin" / "holidays"
install_official("CN", packaged_years("CN"))
install_official("DE-BE", read_year_folder(BERLIN_FOLDER, "DE-BE"))
SHANGHAI = WorkingCalendar("Asia/Shanghai", region="CN")
SHANGHAI_STATUTORY = replace(SHANGHAI, statutory=True)
ONE_DAY = Limit(1, "working_days")


def local(calendar: WorkingCalendar, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(calendar.time_zone)).astimezone(UTC)


def days(year: int):
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += timedelta(days=1)


def policy_with(calendar_toml: str) -> str:
    """The shipped policy with its [calendar] section (to the end of the file) replaced."""
    return GOOD[:GOOD.index("\n[calendar]\n") + 1] + calendar_toml


# -- the files --------------------------------------------------------------------------------------

def test_the_shipped_2026_file_is_the_state_council_s_notice_day_by_day():
    official = packaged_years("CN")[2026]
    assert official.source == "国务院办公厅关于2026年部分节假日安排的通知"
    for day in days(2026):
        assert SHANGHAI.is_working_day(day) == chinese_calendar.is_workday(day), day
    assert sum(SHANGHAI.is_working_day(d) for d in days(2026)) == sum(chinese_calendar.is_workday(d)
                                                                      for d in days(2026))
    assert official.workdays == {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
                                 date(2026, 9, 20), date(2026, 10, 10)}


def test_the_shipped_2025_file_is_the_2025_notice_day_by_day():
    for day in days(2025):
        assert SHANGHAI.is_working_day(day) == chinese_calendar.is_workday(day), day


def test_berlin_s_files_are_its_statutory_holidays_and_swap_no_day():
    berlin = WorkingCalendar("Europe/Berlin", region="DE-BE")
    for year in (2025, 2026, 2027):
        law = holidays_package.country_holidays("DE", subdiv="BE", years=year)
        for day in days(year):
            assert berlin.is_working_day(day) == (day.weekday() < 5 and day not in law), day
        assert read_year_file(BERLIN_FOLDER / f"{year}.toml").workdays == frozenset()


def test_2027_has_no_official_file_and_every_day_of_it_is_flagged_never_guessed():
    assert 2027 not in packaged_years("CN")  # the State Council's 2027 notice is not shipped: no invented dates
    for day in days(2027):
        noon = local(SHANGHAI, day.year, day.month, day.day, 12, 0)
        due = deadline(noon, ONE_DAY, SHANGHAI)
        assert deadline_basis(noon, due, SHANGHAI) == "calendar_gap", day
        assert SHANGHAI_STATUTORY.basis(day, day) == "provisional", day
        statutory_off = day in holidays_package.country_holidays("CN", years=2027)
        assert SHANGHAI_STATUTORY.is_working_day(day) == (day.weekday() < 5 and not statutory_off), day
    for day in days(2026):
        noon = local(SHANGHAI, day.year, day.month, day.day, 12, 0)
        due = deadline(noon, ONE_DAY, SHANGHAI)
        expected = "official" if due.astimezone(SHANGHAI.zone).year == 2026 else "calendar_gap"
        assert deadline_basis(noon, due, SHANGHAI) == expected, day


def test_one_working_day_from_31_december_2026_is_flagged_or_provisional_never_silently_new_year_s_day():
    start = local(SHANGHAI, 2026, 12, 31, 10, 0)
    no_source = deadline(start, ONE_DAY, SHANGHAI)
    assert no_source == local(SHANGHAI, 2027, 1, 1, 17, 30)  # the weekday, taken as it comes ...
    assert deadline_basis(start, no_source, SHANGHAI) == "calendar_gap"  # ... and said so
    statutory = deadline(start, ONE_DAY, SHANGHAI_STATUTORY)
    assert statutory == local(SHANGHAI, 2027, 1, 4, 17, 30), "New Year's Day is a statutory holiday"
    assert deadline_basis(start, statutory, SHANGHAI_STATUTORY) == "provisional"


def test_the_case_carries_what_its_deadline_rests_on():
    policy = TimePolicy((ONE_DAY,) * 4, calendar=SHANGHAI)
    case, _ = open_case(id="c", number="n", category="other", severity="normal", owners=OWNERS, start_level=1,
                        policy=policy, now=local(SHANGHAI, 2026, 12, 31, 10, 0))
    assert case.deadline_basis == "calendar_gap"
    case, _ = open_case(id="c", number="n", category="other", severity="normal", owners=OWNERS, start_level=1,
                        policy=policy, now=local(SHANGHAI, 2026, 12, 28, 10, 0))
    assert case.deadline_basis == "official" and case.deadline == local(SHANGHAI, 2026, 12, 29, 17, 30)
    hours = TimePolicy((Limit(4, "hours"),) * 4, calendar=SHANGHAI)
    case, _ = open_case(id="c", number="n", category="other", severity="normal", owners=OWNERS, start_level=1,
                        policy=hours, now=local(SHANGHAI, 2026, 12, 31, 10, 0))
    assert case.deadline_basis is None, "elapsed hours need no calendar"


@pytest.mark.parametrize(("edit", "problem", "needle"), [
    (lambda t: t.replace("off = [2026-01-01,", "off = [2025-12-31,"), "2025-12-31 is not in 2026", "2025-12-31"),
    (lambda t: t.replace("work = [2026-01-04]", "work = [2026-01-05]"), "a swapped working day is a Saturday",
     "2026-01-05"),
    (lambda t: t.replace("work = [2026-01-04]", "work = [2026-01-03]"), "listed twice", "2026-01-03]"),
    (lambda t: t.replace('region = "CN"', 'region = "DE-BE"'), "the city's holiday region is CN", "region"),
    (lambda t: t.replace("off = [2026-01-01,", "off = [2026-02-30,"), "not TOML", "2026-02-30"),
    (lambda t: t.replace('name = "元旦"', 'name = "元旦"\nextra = 1'), "unknown key 'extra'", "元旦"),
])
def test_a_calendar_file_that_does_not_hold_names_its_line(tmp_path, edit, problem, needle):
    text = edit((PACKAGED_HOLIDAYS / "CN" / "2026.toml").read_text(encoding="utf-8"))
    (tmp_path / "2026.toml").write_text(text, encoding="utf-8")
    with pytest.raises(CalendarFileError) as caught:
        read_year_folder(tmp_path, "CN")
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if needle in t)
    assert problem in str(caught.value) and str(caught.value).startswith(f"{tmp_path / '2026.toml'}:{line}:")


def test_a_city_folder_s_own_files_win_over_the_packaged_ones(tmp_path):
    assert holiday_folder("demo", "CN") == PACKAGED_HOLIDAYS / "CN"
    assert holiday_folder(str(ROOT / "examples" / "berlin"), "DE-BE") == BERLIN_FOLDER
    assert holiday_folder(str(tmp_path), "DE-BE") is None  # a folder without holidays/, no packaged DE-BE


# -- coverage: policy check, start-up, readyz --------------------------------------------------------

def test_coverage_warns_thirty_days_before_the_files_end_and_fails_past_them():
    coverage = Calendars(load_policy().calendar, "Asia/Shanghai", "CN").coverage
    assert coverage.report(date(2026, 11, 30))["status"] == "ok"  # 31 days left
    assert coverage.report(date(2026, 12, 1))["status"] == "ending"  # 30
    ending = coverage.report(date(2026, 12, 4))
    assert ending["status"] == "ending" and ending["days_left"] == 27 and "2027.toml" in ending["message"]
    assert coverage.report(date(2027, 1, 4))["status"] == "gap"
    opted_in = Calendars(parse_policy(GOOD.replace("statutory_fallback = false", "statutory_fallback = true"))
                         .calendar, "Asia/Shanghai", "CN").coverage
    assert opted_in.report(date(2027, 1, 4))["status"] == "provisional"


def test_gridcase_policy_check_fails_on_a_date_beyond_every_source_naming_the_region_line(tmp_path):
    runner = CliRunner()
    today = ["--today", "2026-12-04"]
    result = runner.invoke(main, ["policy", "check", str(DEFAULT_FILE), "--until", "2026-12-31", *today])
    assert result.exit_code == 0 and "warning: the official calendar files (CN) end on 2026-12-31, in 27 days" \
        in result.output
    result = runner.invoke(main, ["policy", "check", str(DEFAULT_FILE), "--today", "2027-01-04"])
    assert result.exit_code == 1 and "no holiday source covers 2027-01-04" in result.output
    result = runner.invoke(main, ["policy", "check", str(DEFAULT_FILE), "--until", "2027-01-04", *today])
    region_line = next(n for n, t in enumerate(GOOD.splitlines(), start=1) if t.startswith("region ="))
    assert result.exit_code == 1 and f"{DEFAULT_FILE}:{region_line}: no holiday source covers 2027-01-04" \
        in result.output
    opted_in = tmp_path / "p.toml"
    opted_in.write_text(GOOD.replace("statutory_fallback = false", "statutory_fallback = true"), encoding="utf-8")
    assert runner.invoke(main, ["policy", "check", str(opted_in), "--until", "2027-01-04", *today]).exit_code == 0
    berlin = runner.invoke(main, ["policy", "check", str(DEFAULT_FILE), "--city", str(ROOT / "examples" / "berlin"),
                                  "--until", "2027-12-31", *today])
    assert berlin.exit_code == 0 and "DE-BE" in berlin.output


def test_gridcase_policy_check_names_the_line_of_a_city_s_bad_calendar_file(tmp_path):
    (tmp_path / "holidays").mkdir()
    (tmp_path / "holidays" / "2026.toml").write_text('region = "CN"\nyear = 2026\nsource = "x"\n'
                                                     '[[holidays]]\nname = "a"\noff = [2027-01-01]\n')
    result = CliRunner().invoke(main, ["policy", "check", str(DEFAULT_FILE), "--city", str(tmp_path),
                                       "--today", "2026-12-04"])
    assert result.exit_code == 1 and "2026.toml:6: a: 2027-01-01 is not in 2026" in result.output


def test_start_up_logs_a_loud_warning_when_the_files_end_within_thirty_days(caplog):
    clock = FakeClock(datetime(2026, 12, 4, 2, 0, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, logger="gridcase"):
        dependencies = bootstrap._dependencies(Settings(), clock)
    assert "CALENDAR ENDING" in caplog.text and "2026-12-31" in caplog.text
    assert dependencies["calendars"].coverage.report(date(2026, 12, 4))["days_left"] == 27


def test_the_ending_warning_says_which_file_from_which_notice_and_when_it_becomes_an_error():
    """The operator reads what to add, where it comes from, how to check it, and what happens when: without
    the statutory fallback `gridcase policy check` fails from the first day the files do not cover."""
    coverage = Coverage("CN", "shared/holidays/CN", (2025, 2026), statutory_fallback=False)
    message = coverage.report(date(2026, 12, 5))["message"]
    for words in ("end on 2026-12-31, in 26 days", "add shared/holidays/CN/2027.toml",
                  "国务院办公厅关于2027年部分节假日安排的通知", "`gridcase policy check --until 2027-12-31`",
                  "runs past 2026-12-31 is flagged calendar_gap",
                  "from 2027-01-01 every one is, and `gridcase policy check` fails (an error)"):
        assert words in message, message
    opted_in = Coverage("CN", "shared/holidays/CN", (2025, 2026), statutory_fallback=True)
    message = opted_in.report(date(2026, 12, 5))["message"]
    assert "is provisional; from 2027-01-01 every one is" in message and "never an error" in message, message


# -- overrides for the whole city, inherited down the area tree ----------------------------------------

INHERITED = policy_with('''[calendar]
region = "CN"
extra_holidays = [2026-12-24, 2026-12-28]

[[calendar.units]]
area = "C1"
extra_holidays = [2026-12-21]

[[calendar.units]]
area = "S1"
extra_workdays = [2026-12-28]
hours.mon = ["09:00-17:00"]
hours.tue = ["09:00-17:00"]

[[calendar.units]]
area = "G1"
extra_holidays = [2026-12-22]
''')


def test_city_overrides_reach_every_unit_and_a_unit_s_entry_adds_to_its_ancestors():
    calendars = Calendars(parse_policy(INHERITED).calendar, "Asia/Shanghai", "CN")
    grid = calendars.for_owners(OWNERS)  # G1 in S1 in C1
    assert not grid.is_working_day(date(2026, 12, 24)), "the city's day off"
    assert not grid.is_working_day(date(2026, 12, 21)), "the sub-center's"
    assert not grid.is_working_day(date(2026, 12, 22)), "the grid's own"
    assert grid.is_working_day(date(2026, 12, 28)), "the station's working day overrides the city's day off"
    assert grid.hours[0] == ((9 * 60, 17 * 60),), "the station's hours"
    sibling = calendars.for_owners(Owners.from_ids({**OWNERS.ids(), "grid": "G2", "station": "S2"}))
    assert not sibling.is_working_day(date(2026, 12, 28)) and not sibling.is_working_day(date(2026, 12, 21))
    assert sibling.is_working_day(date(2026, 12, 22)) and sibling.hours[0] == ((510, 720), (780, 1050))
    elsewhere = calendars.for_owners(Owners.from_ids({"hq": "HQ", "subcenter": "C2"}))
    assert not elsewhere.is_working_day(date(2026, 12, 24)) and elsewhere.is_working_day(date(2026, 12, 21))


def test_a_date_both_off_and_worked_in_one_entry_is_refused_on_its_line():
    text = policy_with('[calendar]\nregion = "CN"\n\n[[calendar.units]]\narea = "S1"\n'
                       'extra_holidays = [2026-12-24]\nextra_workdays = [2026-12-24]\n')
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.toml")
    assert "both" in str(caught.value) and caught.value.line == text.splitlines().index("[[calendar.units]]") + 1


# -- 24:00 and round the clock: one parser for the check and the start ------------------------------------

ALL_DAY = policy_with('[calendar]\nregion = "CN"\n\n[calendar.hours]\n' + "".join(
    f'{d} = ["00:00-24:00"]\n' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")))


def test_00_00_to_24_00_passes_the_check_and_starts_and_loses_no_minute_at_midnight(tmp_path):
    file = tmp_path / "p.toml"
    file.write_text(ALL_DAY, encoding="utf-8")
    assert CliRunner().invoke(main, ["policy", "check", str(file), "--today", "2026-12-04"]).exit_code == 0
    calendars = bootstrap._dependencies(Settings(policy_file=str(file)), FakeClock())["calendars"]  # the start
    city = calendars.city
    start = local(city, 2026, 12, 1, 22, 0)
    assert deadline(start, Limit(48, "working_hours"), city) == start + timedelta(hours=48)
    assert not city.is_working_day(date(2026, 10, 1)), "all day, but the National Day holiday is kept"


@pytest.mark.parametrize("period", ["00:00-24:30", "24:00-24:00", "23:00-25:00", "12:60-13:00"])
def test_a_time_past_24_00_is_refused_by_the_check_and_by_the_start_alike(tmp_path, period):
    file = tmp_path / "p.toml"
    file.write_text(ALL_DAY.replace("00:00-24:00", period), encoding="utf-8")
    assert CliRunner().invoke(main, ["policy", "check", str(file)]).exit_code == 1
    with pytest.raises(PolicyError):
        bootstrap._dependencies(Settings(policy_file=str(file)), FakeClock())
    with pytest.raises(ValueError):
        parse_periods([period])


def test_a_round_the_clock_unit_works_every_day_all_day_holidays_included():
    text = GOOD + '\n[[calendar.units]]\narea = "C1"\nround_the_clock = true\n'
    calendars = Calendars(parse_policy(text).calendar, "Asia/Shanghai", "CN")
    desk = calendars.for_owners(OWNERS)
    national_day = local(desk, 2026, 10, 1, 0, 0)
    assert deadline(national_day, Limit(30, "working_hours"), desk) == national_day + timedelta(hours=30)
    assert deadline(national_day, Limit(2, "working_days"), desk) == local(desk, 2026, 10, 4, 0, 0)
    assert desk.basis(date(2027, 1, 1), date(2027, 1, 5)) is None, "no holiday is needed: no gap"
    with pytest.raises(PolicyError, match="round_the_clock"):
        parse_policy(GOOD + '\n[[calendar.units]]\narea = "C1"\nround_the_clock = true\n'
                            'hours = { mon = ["09:00-17:00"] }\n')


def test_a_weekday_without_hours_is_not_worked_and_a_saturday_with_hours_is():
    calendar = WorkingCalendar("UTC", {0: parse_periods(["09:00-17:00"]), 5: parse_periods(["10:00-14:00"])})
    assert not calendar.is_working_day(date(2026, 12, 4))  # a Friday: no hours
    assert calendar.periods_of(date(2026, 12, 5)) == ((600, 840),)  # a Saturday with its own


def test_the_snapshot_keeps_round_the_clock_and_the_statutory_opt_in():
    policy = TimePolicy((ONE_DAY,) * 4, calendar=replace(SHANGHAI_STATUTORY, round_the_clock=True))
    assert TimePolicy.from_dict(policy.to_dict()) == policy


def test_the_time_model_has_one_home():
    from services.escalation.domain import calendar, deadlines
    from shared import policy, timemodel

    assert deadlines.UNITS is policy.UNITS is timemodel.UNITS and deadlines.Limit is policy.Amount is timemodel.Limit
    assert calendar.WEEKDAYS is policy.WEEKDAYS is timemodel.WEEKDAYS
    assert calendar.parse_periods is timemodel.parse_periods and policy.parse_amount is timemodel.parse_limit
