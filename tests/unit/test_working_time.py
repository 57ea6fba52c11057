"""Working time (the time model's rules): working hours and working days across nights,
weekends, public holidays, China's swapped working days (调休) and Berlin's daylight-saving changes."""
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.processes import ROOT
from services.escalation.domain.calendar import WorkingCalendar, install_official, parse_periods
from services.escalation.domain.deadlines import (
    Limit,
    TimePolicy,
    add_working,
    deadline,
    elapsed,
    time_left,
    warning_times,
    working_between,
)
from shared.timemodel import read_year_folder

install_official("DE-BE", read_year_folder(ROOT / "examples" / "berlin" / "holidays", "DE-BE"))
SHANGHAI = WorkingCalendar("Asia/Shanghai", region="CN")  # 08:30-12:00, 13:00-17:30, Monday to Friday
BERLIN = WorkingCalendar("Europe/Berlin", {d: parse_periods(["08:00-16:00"]) for d in range(5)}, region="DE-BE")


def local(calendar: WorkingCalendar, *args) -> datetime:
    """A local wall time in the calendar's zone, as a UTC instant."""
    return datetime(*args, tzinfo=calendar.zone).astimezone(UTC)


def inside_working_time(calendar: WorkingCalendar, instant: datetime) -> bool:
    """Inside a working period, its end included (an amount may run out exactly at 17:30)."""
    day = calendar.local_date(instant)
    return any(a < instant <= b for a, b in calendar.utc_periods(day))


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31),
                        timezones=st.just(UTC))


def test_working_hours_skip_the_night_and_the_lunch_break():
    start = local(SHANGHAI, 2026, 11, 30, 16, 0)  # a Monday
    assert deadline(start, Limit(4, "working_hours"), SHANGHAI) == local(SHANGHAI, 2026, 12, 1, 11, 0)
    assert deadline(start, Limit(5, "working_hours"), SHANGHAI) == local(SHANGHAI, 2026, 12, 1, 12, 0)
    assert deadline(start, Limit(6, "working_hours"), SHANGHAI) == local(SHANGHAI, 2026, 12, 1, 14, 0)


def test_a_clock_started_outside_working_time_starts_at_the_next_working_period():
    saturday_night = local(SHANGHAI, 2026, 11, 28, 23, 0)
    assert deadline(saturday_night, Limit(1, "working_hours"), SHANGHAI) == local(SHANGHAI, 2026, 11, 30, 9, 30)


def test_an_amount_running_out_at_the_end_of_a_period_ends_there_not_at_the_next_start():
    start = local(SHANGHAI, 2026, 11, 30, 13, 0)
    assert deadline(start, Limit(4.5, "working_hours"), SHANGHAI) == local(SHANGHAI, 2026, 11, 30, 17, 30)


def test_the_national_day_holiday_is_not_working_time_and_the_swapped_saturday_is():
    # 2026: 1-7 October off; Saturday 10 October worked (调休), with Monday's periods
    before = local(SHANGHAI, 2026, 9, 30, 17, 0)
    assert deadline(before, Limit(1, "working_hours"), SHANGHAI) == local(SHANGHAI, 2026, 10, 8, 9, 0)
    friday = local(SHANGHAI, 2026, 10, 9, 17, 0)
    assert deadline(friday, Limit(1, "working_hours"), SHANGHAI) == local(SHANGHAI, 2026, 10, 10, 9, 0)


def test_n_working_days_do_not_count_the_start_day_and_end_at_the_close_of_the_nth():
    monday_morning = local(SHANGHAI, 2026, 11, 30, 8, 0)
    assert deadline(monday_morning, Limit(1, "working_days"), SHANGHAI) == local(SHANGHAI, 2026, 12, 1, 17, 30)
    friday = local(SHANGHAI, 2026, 12, 4, 10, 0)
    assert deadline(friday, Limit(2, "working_days"), SHANGHAI) == local(SHANGHAI, 2026, 12, 8, 17, 30)


def test_working_days_step_over_a_holiday_week_and_onto_a_swapped_working_saturday():
    assert deadline(local(SHANGHAI, 2026, 9, 30, 10, 0), Limit(1, "working_days"), SHANGHAI) == \
        local(SHANGHAI, 2026, 10, 8, 17, 30)
    assert deadline(local(SHANGHAI, 2026, 10, 9, 10, 0), Limit(1, "working_days"), SHANGHAI) == \
        local(SHANGHAI, 2026, 10, 10, 17, 30)


def test_calendar_hours_ignore_holidays_and_working_periods():
    start = local(SHANGHAI, 2026, 10, 1, 3, 0)
    assert deadline(start, Limit(4, "hours"), SHANGHAI) == start + timedelta(hours=4)


def test_a_working_unit_without_a_calendar_is_refused():
    with pytest.raises(ValueError):
        deadline(datetime(2026, 1, 5, tzinfo=UTC), Limit(1, "working_hours"))


def test_a_unit_override_makes_a_day_off_or_a_working_day():
    calendar = WorkingCalendar("Asia/Shanghai", region="CN", extra_holidays=frozenset({date(2026, 12, 1)}),
                               extra_workdays=frozenset({date(2026, 12, 5)}))
    assert not calendar.is_working_day(date(2026, 12, 1)) and calendar.is_working_day(date(2026, 12, 5))
    assert calendar.periods_of(date(2026, 12, 5)) == calendar.hours[0]


def test_the_berlin_calendar_knows_berlin_s_own_holiday():
    women_s_day = date(2027, 3, 8)  # a Monday; a public holiday in Berlin only
    assert not BERLIN.is_working_day(women_s_day)
    assert WorkingCalendar("Europe/Berlin", region="DE-BB").is_working_day(women_s_day)
    assert BERLIN.is_working_day(date(2026, 3, 10)) and not BERLIN.is_working_day(date(2026, 10, 3))


def test_suspended_time_outside_working_periods_changes_nothing():
    suspended = local(SHANGHAI, 2026, 11, 30, 18, 0)
    due = deadline(suspended, Limit(2, "working_hours"), SHANGHAI)
    left = time_left(due, suspended, "working_hours", SHANGHAI)
    resumed = local(SHANGHAI, 2026, 11, 30, 23, 0)  # resumed at night: as if never suspended
    assert deadline(resumed, left, SHANGHAI) == due == local(SHANGHAI, 2026, 12, 1, 10, 30)
    resumed_next_noon = local(SHANGHAI, 2026, 12, 1, 12, 30)  # consumed from the resume instant
    assert deadline(resumed_next_noon, left, SHANGHAI) == local(SHANGHAI, 2026, 12, 1, 15, 0)


def test_warnings_fire_at_their_share_of_the_working_time_to_the_deadline():
    start = local(SHANGHAI, 2026, 11, 30, 8, 30)
    due = deadline(start, Limit(8, "working_hours"), SHANGHAI)
    assert warning_times(start, due, "working_hours", (0.5, 0.8), SHANGHAI) == (
        (0.5, local(SHANGHAI, 2026, 11, 30, 13, 30)), (0.8, local(SHANGHAI, 2026, 11, 30, 15, 54)))


def test_a_policy_with_a_calendar_and_warnings_survives_a_round_trip():
    policy = TimePolicy((Limit(1, "working_days"),) * 4, warnings=(0.5, 0.8), calendar=BERLIN)
    assert TimePolicy.from_dict(policy.to_dict()) == policy


@settings(max_examples=150, deadline=None)
@given(start=instants, amount=st.integers(min_value=1, max_value=24 * 60 * 30))
def test_adding_working_minutes_then_measuring_returns_them(start, amount):
    for calendar in (SHANGHAI, BERLIN):
        end = add_working(start, amount * 60, calendar)
        assert working_between(start, end, calendar) == amount * 60


@settings(max_examples=150, deadline=None)
@given(start=instants, days=st.integers(min_value=1, max_value=40))
def test_adding_working_days_then_measuring_returns_them(start, days):
    for calendar in (SHANGHAI, BERLIN):
        end = deadline(start, Limit(days, "working_days"), calendar)
        assert elapsed(start, end, "working_days", calendar) == days


@settings(max_examples=150, deadline=None)
@given(start=instants, hours=st.floats(min_value=0.01, max_value=200), unit=st.sampled_from(["working_hours",
                                                                                             "working_days"]))
def test_a_working_deadline_never_lands_outside_working_time(start, hours, unit):
    for calendar in (SHANGHAI, BERLIN):
        assert inside_working_time(calendar, deadline(start, Limit(hours, unit), calendar))


@pytest.mark.parametrize("day", [date(2026, 3, 27), date(2026, 10, 23)])  # Fridays before the changes
def test_berlin_s_daylight_saving_changes_neither_lose_nor_add_an_hour(day):
    friday_noon = datetime.combine(day, time(12), BERLIN.zone).astimezone(UTC)
    monday = day + timedelta(days=3)
    assert deadline(friday_noon, Limit(8, "working_hours"), BERLIN) == \
        datetime.combine(monday, time(12), BERLIN.zone).astimezone(UTC)
    monday_noon = datetime.combine(monday, time(12), BERLIN.zone).astimezone(UTC)
    assert monday_noon - friday_noon != timedelta(days=3)  # the clocks did change over the weekend
    assert working_between(friday_noon, monday_noon, BERLIN) == 8 * 3600


@settings(max_examples=100, deadline=None)
@given(start=st.datetimes(min_value=datetime(2026, 3, 20), max_value=datetime(2026, 11, 1), timezones=st.just(UTC)),
       hours=st.integers(min_value=1, max_value=80))
def test_a_working_day_in_berlin_is_eight_hours_whatever_the_offset(start, hours):
    end = deadline(start, Limit(hours, "working_hours"), BERLIN)
    assert working_between(start, end, BERLIN) == hours * 3600
    local_end = end.astimezone(BERLIN.zone).time()
    assert time(8) < local_end <= time(16)


def test_a_report_at_half_past_two_on_1_december_in_shanghai_is_numbered_1_december():
    from services.intake.domain.reports import report_number

    reported = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)  # 02:30 on 1 December in UTC+8
    assert report_number(42, reported, "Asia/Shanghai") == "20261201-000042"
    assert report_number(42, reported, "Europe/Berlin") == "20261130-000042"
