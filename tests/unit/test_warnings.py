"""Pre-deadline warnings (issue 10): at each threshold of a level's limit, once, a ``warning`` step and
its ``case.warning`` event; the scheduler is woken for them through ``Case.due_at``."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from services.escalation.domain.actions import perform
from services.escalation.domain.calendar import WorkingCalendar
from services.escalation.domain.deadlines import Limit
from services.escalation.domain.timers import escalate_due
from shared.messages.events import LIFECYCLE
from shared.vocabulary import StepType
from tests.support.cases import GRID_WORKER, HOUR, NOW, POLICY, STATION, new_case

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
    perform(case, "suspend", GRID_WORKER, NOW, reason="waiting for parts")
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
