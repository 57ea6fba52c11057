"""督办 (urging): who may urge, who answers, the answer's due time, and what a late answer does."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.escalation.domain.actions import available, perform
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed
from services.escalation.domain.measures import measure
from services.escalation.domain.permissions import Actor
from services.escalation.domain.timeline import Step, StepType
from services.escalation.domain.timers import escalate_due
from shared.departments import Department
from shared.vocabulary import Status
from tests.support.cases import (
    COMMAND,
    GRID_WORKER,
    HOUR,
    NOW,
    OWNERS,
    STATION,
    SUBCENTER,
    SUPERVISOR,
    closed_case,
    new_case,
)

OTHER_SUBCENTER = Actor("subcenter", "qian", "C9")


def types(outcome) -> list[str]:
    return [str(s.type) for s in outcome.steps]


def test_command_urges_the_owner_who_answers_within_the_time_given():
    case = new_case()
    outcome = perform(case, "urge", COMMAND, NOW, note="residents are calling", respond_within="2 hours")
    assert types(outcome) == ["urged"] and outcome.events[0].detail["urged"] == "G1"
    assert case.urges[0].due == NOW + 2 * HOUR and case.due_at == NOW + 2 * HOUR, "the scheduler wakes for it"
    assert "respond_urge" in available(case, GRID_WORKER, NOW)
    with pytest.raises(NotAllowed):
        perform(case, "respond_urge", STATION, NOW, note="not mine to answer")
    perform(case, "respond_urge", GRID_WORKER, NOW + HOUR, note="crew on site at 10:00")
    assert case.urges[0].answered_at == NOW + HOUR and not any(u.open for u in case.urges)
    with pytest.raises(InvalidTransition):
        perform(case, "respond_urge", GRID_WORKER, NOW + HOUR, note="again")


def test_an_urge_without_a_time_uses_the_rules_urge_response_in_the_cases_calendar():
    case = new_case()
    perform(case, "urge", SUPERVISOR, NOW, note="why so slow")
    assert case.urges[0].due == NOW + timedelta(hours=case.policy.urge_response.amount)


@pytest.mark.parametrize(("actor", "level", "allowed"), [
    (COMMAND, 3, True), (SUPERVISOR, 4, True), (SUBCENTER, 1, True), (SUBCENTER, 2, True),
    (SUBCENTER, 3, False),  # a sub-center urges its stations, not itself
    (OTHER_SUBCENTER, 2, False), (STATION, 1, False), (GRID_WORKER, 1, False),
    (Actor("department", "w", None, "water"), 1, False),
])
def test_who_may_urge(actor, level, allowed):
    case = new_case(start_level=level)
    if allowed:
        assert perform(case, "urge", actor, NOW, note="please act")
    else:
        with pytest.raises(NotAllowed):
            perform(case, "urge", actor, NOW, note="please act")


@pytest.mark.parametrize(("arguments", "field"), [
    ({"note": "  "}, "note"), ({"note": "x", "respond_within": "soon"}, "respond_within"),
    ({"note": "x", "respond_within": "1e300 hours"}, "respond_within"), ({"note": "x", "respond_within": "0 hours"},
                                                                        "respond_within"),
])
def test_a_bad_urge_names_its_field_and_changes_nothing(arguments, field):
    case = new_case()
    with pytest.raises(InvalidArgument) as refused:
        perform(case, "urge", COMMAND, NOW, **arguments)
    assert refused.value.field == field and case.urges == ()


def test_a_closed_case_cannot_be_urged():
    with pytest.raises(InvalidTransition):
        perform(closed_case(), "urge", COMMAND, NOW, note="too late")


def test_an_urge_not_answered_in_time_is_flagged_once_and_can_still_be_answered():
    case = new_case()
    perform(case, "urge", COMMAND, NOW, note="now please", respond_within="1 hours")
    outcome = escalate_due(case, NOW + 90 * timedelta(minutes=1), case.timer_token)
    assert types(outcome) == ["urge_overdue"] and outcome.steps[0].scheduled_at == NOW + HOUR
    assert case.level == 1, "an urge never moves the case"
    assert "urge_overdue" not in types(escalate_due(case, NOW + 2 * HOUR, case.timer_token)), "flagged once"
    perform(case, "respond_urge", GRID_WORKER, NOW + 2 * HOUR, note="sorry, on it")


def test_a_case_with_a_lead_department_is_answered_by_that_department():
    case = new_case()
    water = Department("water", "自来水公司", "Water", "HQ")
    perform(case, "assign_department", COMMAND, NOW, department=water, role="lead")
    perform(case, "urge", COMMAND, NOW, note="the road is flooding")
    assert case.status == Status.DISPATCHED and case.urges[0].urged == "water"
    with pytest.raises(NotAllowed):
        perform(case, "respond_urge", GRID_WORKER, NOW, note="not me")
    perform(case, "respond_urge", Actor("department", "water-desk", None, "water"), NOW, note="pump on its way")


def test_the_statistics_count_urges_late_answers_and_the_time_to_respond():
    case = new_case()
    steps = list(perform(case, "urge", COMMAND, NOW, note="a", respond_within="1 hours").steps)
    steps += escalate_due(case, NOW + 2 * HOUR, case.timer_token).steps
    steps += perform(case, "respond_urge", GRID_WORKER, NOW + 3 * HOUR, note="b").steps
    timeline = [Step(NOW, StepType.OPENED, case.level, "system"), *steps]
    facts = measure(timeline, case.policy, OWNERS, (), NOW + 4 * HOUR, closed_now=False)
    assert (facts.urged, facts.urges_late, facts.time_to_respond) == (True, 1, 3 * 3600.0)
