"""Pre-deadline warnings: at each threshold of a level's limit, once, a ``warning`` step and
its ``case.warning`` event; the scheduler is woken for them through ``Case.due_at``."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.escalation.calendars import time_policy
from services.escalation.domain.actions import perform
from services.escalation.domain.calendar import WorkingCalendar
from services.escalation.domain.deadlines import Limit, TimePolicy, working_between
from services.escalation.domain.timers import escalate_due
from shared.messages.events import LIFECYCLE
from shared.policy import DEFAULT_FILE, PolicyError, parse_policy
from shared.vocabulary import StepType
from tests.support.cases import GRID_WORKER, HOUR, NOW, POLICY, STATION, new_case
from tests.support.cases import suspended as suspend_approved

WARNED = replace(POLICY, warnings=(0.5, 0.8))


def tick(case, at):
    return escalate_due(case, at, case.timer_token)


def test_the_case_is_due_at_its_first_warning_before_its_deadline():
    case = new_case(policy=WARNED)
    assert case.due_at == NOW + 2 * HOUR and case.deadline == NOW + 4 * HOUR


def test_each_threshold_fires_once_with_its_step_and_its_event():
    case = new_case(policy=WARNED)
    assert not tick(case, NOW + 2 * HOUR - timedelta(microseconds=1))
    outcome = tick(case, NOW + 2 * HOUR)
    [step] = outcome.steps
    assert step.type == StepType.WARNING and step.scheduled_at == NOW + 2 * HOUR
    assert outcome.events[0].type == "case.warning" and outcome.events[0].detail == {"threshold": 0.5}
    assert case.warned == 0.5 and case.due_at == NOW + timedelta(hours=3.2)
    assert not tick(case, NOW + 3 * HOUR), "the 50 % warning does not fire twice"
    [second] = tick(case, NOW + timedelta(hours=3.2)).steps
    assert second.type == StepType.WARNING and case.warned == 0.8 and case.due_at == case.deadline


def test_a_scheduler_late_past_both_thresholds_fires_each_once_in_order():
    case = new_case(policy=WARNED)
    steps = tick(case, NOW + 3.5 * HOUR).steps
    assert [s.scheduled_at for s in steps] == [NOW + 2 * HOUR, NOW + timedelta(hours=3.2)]


def test_warnings_whose_deadline_passed_too_give_way_to_the_escalation():
    case = new_case(policy=WARNED)
    steps = tick(case, NOW + 4 * HOUR).steps
    assert [s.type for s in steps] == [StepType.ESCALATED]
    assert case.warned is None and case.due_at == NOW + 8 * HOUR, "level 2's first warning: half of 8 h"


def test_an_extension_does_not_repeat_a_warning_already_given():
    case = new_case(policy=WARNED)
    tick(case, NOW + 2 * HOUR)
    perform(case, "request_extension", GRID_WORKER, NOW + 2 * HOUR, amount={"amount": 4, "unit": "hours"},
            reason="parts")
    perform(case, "approve_extension", STATION, NOW + 2 * HOUR)
    assert case.deadline == NOW + 8 * HOUR
    assert [p for p, _ in case.warnings] == [0.8] and case.warnings[0][1] == NOW + timedelta(hours=6.4)


def test_a_resolved_case_has_no_warning_pending_and_a_suspended_one_is_not_due_at_its_warnings():
    case = new_case(policy=WARNED)
    suspend_approved(case, NOW, reason="waiting for parts")
    assert case.due_at is None and not tick(case, NOW + 10 * HOUR).steps, "they wait for the resume"
    case = new_case(policy=WARNED)
    perform(case, "resolve", GRID_WORKER, NOW, note="fixed")
    assert case.warnings == () and case.due_at == NOW + 24 * HOUR


def test_a_working_hours_warning_counts_working_time():
    calendar = WorkingCalendar("UTC", region=None)  # 08:30-12:00, 13:00-17:30 UTC
    policy = replace(WARNED, levels=(Limit(8, "working_hours"),) * 4, calendar=calendar)
    case = new_case(policy=policy)  # NOW is Monday 5 January 2026, 09:00 UTC
    assert case.deadline == NOW.replace(day=6, hour=9)
    assert case.warnings[0][1] == NOW.replace(hour=14, minute=0), "4 working hours: 3 before lunch, 1 after"


def test_case_warning_is_a_lifecycle_message():
    assert "case.warning" in LIFECYCLE


# -- warnings are shares of the time worked, net of suspension -------------------------------------------

def test_after_a_suspension_the_warnings_fire_at_their_share_of_the_time_worked_not_of_the_span():
    case = new_case(policy=WARNED)  # 4 h at level 1: 50 % after 2 h worked, 80 % after 3.2 h
    suspend_approved(case, NOW + HOUR, reason="waiting for the road to reopen")
    perform(case, "resume", GRID_WORKER, NOW + 6 * HOUR)
    assert case.deadline == NOW + 9 * HOUR
    assert case.warnings == ((0.5, NOW + 7 * HOUR), (0.8, NOW + timedelta(hours=8.2)))
    assert not tick(case, NOW + 6 * HOUR).steps, "nothing fires at the resume"


def test_with_a_one_hour_urgent_limit_the_warnings_do_not_both_fire_at_the_resume():
    urgent = replace(WARNED, levels=(Limit(1, "hours"),) * 4)
    case = new_case(policy=urgent)
    suspend_approved(case, NOW + timedelta(minutes=10), reason="gas leak: area closed")
    resumed = NOW + timedelta(hours=3, minutes=10)
    perform(case, "resume", GRID_WORKER, resumed)
    assert not tick(case, resumed).steps
    assert case.warnings == ((0.5, resumed + timedelta(minutes=20)), (0.8, resumed + timedelta(minutes=38)))
    [first] = tick(case, resumed + timedelta(minutes=20)).steps
    assert first.type == StepType.WARNING and case.warned == 0.5


def test_a_working_hours_warning_after_a_suspension_fires_at_80_percent_of_the_working_time_worked():
    calendar = WorkingCalendar("UTC", region=None)  # 08:30-12:00, 13:00-17:30 UTC, Monday to Friday
    policy = replace(WARNED, levels=(Limit(8, "working_hours"),) * 4, calendar=calendar)
    case = new_case(policy=policy)  # Monday 5 January 2026, 09:00 UTC
    suspended, resumed = NOW.replace(hour=11), NOW.replace(hour=15)  # 2 working hours worked, 3 suspended
    suspend_approved(case, suspended, reason="owner away")
    perform(case, "resume", GRID_WORKER, resumed)
    assert case.deadline == NOW.replace(day=6, hour=12)  # 6 working hours left: 2.5 on Monday, 3.5 on Tuesday
    [(_, half), (_, eighty)] = case.warnings
    worked = [working_between(NOW, suspended, calendar) + working_between(resumed, at, calendar)
              for at in (half, eighty)]
    assert worked == [4 * 3600, 6.4 * 3600]
    assert (half, eighty) == (NOW.replace(hour=17), NOW.replace(day=6, hour=10, minute=24))


def test_an_extension_after_a_resume_moves_each_pending_warning_by_its_share_of_the_time_added():
    case = new_case(policy=WARNED)
    suspend_approved(case, NOW + HOUR, reason="parts")
    perform(case, "resume", GRID_WORKER, NOW + 6 * HOUR)  # 3 h left, deadline NOW + 9 h
    perform(case, "request_extension", GRID_WORKER, NOW + 6 * HOUR, amount={"amount": 4, "unit": "hours"},
            reason="parts")
    perform(case, "approve_extension", STATION, NOW + 6 * HOUR)  # 8 h in all: 4 h and 6.4 h worked
    assert case.deadline == NOW + 13 * HOUR
    assert case.warnings == ((0.5, NOW + 9 * HOUR), (0.8, NOW + timedelta(hours=11.4)))


# -- thresholds per level ---------------------------------------------------------------------------------

def test_each_level_may_have_its_own_thresholds_or_none():
    policy = replace(WARNED, level_warnings=((1, (0.75,)), (2, ())))
    case = new_case(policy=policy)
    assert [p for p, _ in case.warnings] == [0.75] and case.warnings[0][1] == NOW + 3 * HOUR
    tick(case, NOW + 4 * HOUR)  # escalated to the station: no warning there
    assert case.level == 2 and case.warnings == () and case.due_at == NOW + 12 * HOUR
    tick(case, NOW + 12 * HOUR)  # the sub-center: the policy's 50 % and 80 %
    assert [p for p, _ in case.warnings] == [0.5, 0.8]
    assert TimePolicy.from_dict(policy.to_dict()) == policy


def test_the_policy_file_names_thresholds_per_level_and_they_reach_the_snapshot():
    text = DEFAULT_FILE.read_text(encoding="utf-8").replace(
        "[severities.urgent]", "[severities.urgent]\nwarnings = { grid = [0.5], hq = [0.9] }", 1)
    text = text.replace('verification = "4 hours"\nwarnings = [0.5, 0.8]\n', 'verification = "4 hours"\n')
    rule = parse_policy(text).category("manhole_cover").rule("urgent")
    assert rule.warnings_at(1) == (0.5,) and rule.warnings_at(4) == (0.9,) and rule.warnings_at(2) == (0.5, 0.8)
    frozen = time_policy(rule, WorkingCalendar())
    assert frozen.warnings_at(1) == (0.5,) and frozen.warnings_at(3) == (0.5, 0.8)
    with pytest.raises(PolicyError, match="unknown level"):
        parse_policy(text.replace("hq = [0.9]", "roof = [0.9]"))
