"""One deadline rule, one lateness rule, and what a case does when its deadline passes."""
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.escalation.domain.actions import perform
from services.escalation.domain.deadlines import Limit, TimePolicy, deadline, is_late, time_left
from services.escalation.domain.timers import escalate_due
from shared.vocabulary import Level, Status
from tests.support.cases import GRID_WORKER, HOUR, NOW, OWNERS, POLICY, STATION, closed_case, new_case, resolved_case

TICK = timedelta(microseconds=1)


def test_a_deadline_is_its_limit_after_the_start():
    assert deadline(NOW, Limit(4)) == NOW + 4 * HOUR
    assert deadline(NOW, Limit(90, "minutes")) == NOW + timedelta(minutes=90)


def test_a_deadline_is_late_from_its_very_instant_and_not_a_microsecond_before():
    assert not is_late(NOW, NOW - TICK)
    assert is_late(NOW, NOW) and is_late(NOW, NOW + TICK)
    assert not is_late(None, NOW)


@given(left=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
       pause=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_the_time_left_restarts_the_clock_with_exactly_that_much(left, pause):
    suspended_at = NOW
    resumed_at = NOW + pause
    assert deadline(resumed_at, time_left(suspended_at + left, suspended_at)) == resumed_at + left


def test_the_time_left_after_a_deadline_is_none():
    assert time_left(NOW, NOW + HOUR).seconds == 0


def test_a_time_policy_survives_a_round_trip_through_a_plain_dict():
    assert TimePolicy.from_dict(POLICY.to_dict()) == POLICY
    assert POLICY.to_dict()["levels"]["2"] == {"amount": 8, "unit": "hours"}


def test_a_bare_hours_mapping_reads_as_a_policy_with_the_default_caps():
    policy = TimePolicy.from_dict({"1": 4.0, "2": 8.0, "3": 24.0, "4": 48.0})
    assert policy.limit(Level.SUBCENTER) == Limit(24) and policy.verification == Limit(24)


@pytest.mark.parametrize("levels", [(Limit(1),) * 3, (Limit(1), Limit(0), Limit(1), Limit(1))])
def test_a_policy_needs_a_positive_limit_at_each_of_the_four_levels(levels):
    with pytest.raises(ValueError):
        TimePolicy(levels)


def test_a_limit_has_a_known_unit_and_is_not_negative():
    for bad in [lambda: Limit(1, "fortnights"), lambda: Limit(-1), lambda: Limit(float("nan"))]:
        with pytest.raises(ValueError):
            bad()


def test_nothing_happens_a_microsecond_before_the_deadline():
    case = new_case()
    assert not escalate_due(case, NOW + 4 * HOUR - TICK, case.timer_token) and case.level == Level.GRID


def test_at_the_deadline_the_case_moves_up_one_level_open_for_its_new_owner():
    case = new_case()
    perform(case, "acknowledge", GRID_WORKER, NOW)
    outcome = escalate_due(case, NOW + 4 * HOUR, case.timer_token)
    assert (case.level, case.status, case.owner.area_id) == (Level.STATION, Status.OPEN, "S1")
    assert [e.type for e in outcome.events] == ["case.escalated"] and outcome.steps[0].actor == "system"


def test_a_late_escalation_dates_the_next_deadline_from_the_missed_one():
    case = new_case()
    fired = NOW + 4 * HOUR + timedelta(minutes=30)
    step, = escalate_due(case, fired, case.timer_token).steps
    assert (step.at, step.scheduled_at) == (fired, NOW + 4 * HOUR)
    assert case.deadline == NOW + 4 * HOUR + 8 * HOUR


def test_a_scheduler_down_for_three_levels_catches_up_with_the_original_schedule_at_once():
    case = new_case()
    fired = NOW + (4 + 8 + 24) * HOUR + HOUR
    outcome = escalate_due(case, fired, case.timer_token)
    assert [(str(s.type), s.level, s.at, s.scheduled_at) for s in outcome.steps] == [
        ("escalated", Level.STATION, fired, NOW + 4 * HOUR),
        ("escalated", Level.SUBCENTER, fired, NOW + 12 * HOUR),
        ("escalated", Level.HQ, fired, NOW + 36 * HOUR),
    ]
    assert case.deadline == NOW + (36 + 48) * HOUR and not case.overdue


def test_a_case_past_every_deadline_climbs_to_headquarters_and_is_flagged_overdue_in_one_tick():
    case = new_case()
    outcome = escalate_due(case, NOW + 1000 * HOUR, case.timer_token)
    assert [str(s.type) for s in outcome.steps] == ["escalated"] * 3 + ["overdue"]
    assert outcome.steps[-1].scheduled_at == NOW + 84 * HOUR == case.deadline


def test_an_escalation_skips_a_level_with_no_owner_and_takes_that_levels_limit():
    case = new_case(owners=replace(OWNERS, station=None))
    escalate_due(case, NOW + 4 * HOUR, case.timer_token)
    assert case.level == Level.SUBCENTER and case.deadline == NOW + 28 * HOUR


def test_headquarters_is_flagged_overdue_once_and_keeps_its_deadline():
    case = new_case(start_level=4)
    outcome = escalate_due(case, NOW + 48 * HOUR, case.timer_token)
    assert [e.type for e in outcome.events] == ["case.overdue"]
    assert case.overdue and case.deadline == NOW + 48 * HOUR and case.level == Level.HQ
    assert case.due_at is None and not escalate_due(case, NOW + 96 * HOUR, case.timer_token)


def test_a_stale_tick_does_nothing():
    case = new_case()
    stale = case.timer_token
    perform(case, "escalate", GRID_WORKER, NOW + HOUR, reason="by hand")
    assert not escalate_due(case, NOW + 5 * HOUR, stale)
    assert case.level == Level.STATION and case.deadline == NOW + 9 * HOUR


def test_a_tick_delivered_twice_fires_once():
    case = new_case()
    token = case.timer_token
    assert escalate_due(case, NOW + 4 * HOUR, token)
    assert not escalate_due(case, NOW + 4 * HOUR, token) and case.level == Level.STATION


def test_a_missed_verification_is_flagged_to_the_station_once_without_a_level_change():
    case = resolved_case()
    outcome = escalate_due(case, NOW + 24 * HOUR, case.timer_token)
    assert [(e.type, str(e.step.type)) for e in outcome.events] == [("case.verification_overdue", "overdue")]
    assert (case.level, case.status, case.deadline) == (Level.GRID, Status.VERIFYING, NOW + 24 * HOUR)
    assert case.verification_overdue and not escalate_due(case, NOW + 48 * HOUR, case.timer_token)
    perform(case, "verify", STATION, NOW + 48 * HOUR, passed=True)  # the grid worker fixed it: the station checks
    assert case.status == Status.CLOSED and not case.verification_overdue


def test_a_closed_case_has_no_deadline_and_never_escalates():
    case = closed_case()
    assert case.deadline is None and not escalate_due(case, NOW + 1000 * HOUR, case.timer_token)
