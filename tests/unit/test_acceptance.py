"""Acceptance (立案) and the endings other than a fix, the severity set at acceptance, and the named handler
(承办人): the domain's rules, every bad input of the acceptance list refused with its status and field."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.escalation.domain.acceptance import Person, Severity
from services.escalation.domain.actions import available, perform
from services.escalation.domain.deadlines import Limit
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed
from services.escalation.domain.measures import measure, replay
from services.escalation.domain.permissions import Actor
from services.escalation.domain.timers import escalate_due
from shared.policy import load_policy
from shared.vocabulary import Level, Status
from shared.words import note_text
from tests.support.cases import (
    COMMAND,
    GRID_WORKER,
    HOUR,
    NOW,
    OTHER_OWNERS,
    OWNERS,
    POLICY,
    STATION,
    SUBCENTER,
    SUPERVISOR,
    closed_case,
    new_case,
)

LATER = NOW + HOUR
#: Half an hour to accept, as the shipped policy's urgent severity.
WAITING = replace(POLICY, acceptance_limit=Limit(30, "minutes"))
URGENT = Severity("urgent", replace(WAITING, levels=(Limit(1), Limit(2), Limit(4), Limit(8))), Level.GRID)
LI = Person("li", frozenset({"S1"}))


def pending_case(**overrides):
    return new_case(**{"pending": True, "policy": WAITING, **overrides})


def types(outcome) -> list[str]:
    return [str(s.type) for s in outcome.steps]


# -- the policy: who waits ---------------------------------------------------------------------------------

def test_the_policy_makes_the_publics_reports_wait_and_trusts_grid_workers_and_staff():
    policy = load_policy()
    assert policy.acceptance_needed("street_light", "open311")
    assert not policy.acceptance_needed("street_light", "grid_worker")
    assert not policy.acceptance_needed("street_light", "staff")
    assert not policy.acceptance_needed("street_light", None), "a report sent before channels opens at once"


SMALL = """
[[categories]]
code = "street_light"
zh = "路灯损坏"
en = "Broken street light"

[[categories]]
code = "neighbour_dispute"
zh = "邻里纠纷"
en = "Neighbour dispute"
needs_acceptance = { grid_worker = true }

[[categories]]
code = "other"
zh = "其他"
en = "Other"
"""


def test_a_category_may_say_otherwise_for_a_channel():
    from shared.policy import parse_policy

    policy = parse_policy(SMALL)
    assert policy.acceptance_needed("neighbour_dispute", "grid_worker")
    assert policy.acceptance_needed("neighbour_dispute", "open311"), "a channel it does not name follows the table"
    assert not policy.acceptance_needed("street_light", "grid_worker")


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("[needs_acceptance]\nfax = true\n" + SMALL, 1, "unknown channel 'fax'"),
    ("[needs_acceptance]\nopen311 = \"yes\"\n" + SMALL, 1, "open311 is true or false"),
    (SMALL.replace("grid_worker = true", "grid_worker = 1"), 11, "grid_worker is true or false"),
])
def test_a_bad_acceptance_table_is_refused_naming_its_line(text, line, problem):
    from shared.policy import PolicyError, parse_policy

    with pytest.raises(PolicyError, match=problem) as refused:
        parse_policy(text, "policy.toml")
    assert refused.value.line == line


# -- waiting for acceptance -----------------------------------------------------------------------------

def test_a_report_that_needs_acceptance_waits_with_the_acceptance_limit_and_no_ladder():
    case = pending_case()
    assert case.status == Status.PENDING_ACCEPTANCE
    assert case.deadline == NOW + timedelta(minutes=30) and case.warnings == ()
    assert available(case, GRID_WORKER, NOW) == [], "the grid worker does not act on a report nobody accepted"
    assert set(available(case, STATION, NOW)) == {"accept", "refuse", "merge", "set_severity"}
    assert "void" in available(case, COMMAND, NOW)


def test_a_report_not_accepted_in_time_is_flagged_once_and_keeps_waiting():
    case = pending_case()
    outcome = escalate_due(case, NOW + HOUR, case.timer_token)
    assert types(outcome) == ["acceptance_overdue"] and outcome.steps[0].scheduled_at == NOW + timedelta(minutes=30)
    assert (case.status, case.level, case.overdue) == (Status.PENDING_ACCEPTANCE, Level.GRID, True)
    assert not escalate_due(case, NOW + 5 * HOUR, case.timer_token), "flagged once"
    assert case.due_at is None


def test_accepting_starts_the_ladder_at_the_start_level_with_its_full_limit():
    case = pending_case()
    escalate_due(case, LATER, case.timer_token)
    outcome = perform(case, "accept", STATION, LATER, note="a city matter")
    assert types(outcome) == ["accepted"] and outcome.events[0].type == "case.accepted"
    assert (case.status, case.level, case.overdue) == (Status.OPEN, Level.GRID, False)
    assert case.deadline == LATER + 4 * HOUR, "the clock starts at acceptance"
    assert "acknowledge" in available(case, GRID_WORKER, LATER)


@pytest.mark.parametrize("actor", [GRID_WORKER, SUPERVISOR, Actor("station", "zhou", "S9")])
def test_only_staff_over_the_case_accept_it(actor):
    with pytest.raises(NotAllowed):
        perform(pending_case(), "accept", actor, LATER)


def test_a_sub_center_and_command_accept_too():
    for actor in (SUBCENTER, COMMAND):
        case = pending_case()
        perform(case, "accept", actor, LATER)
        assert case.status == Status.OPEN


def test_accepting_an_accepted_case_is_a_conflict():
    case = pending_case()
    perform(case, "accept", STATION, LATER)
    with pytest.raises(InvalidTransition, match="awaiting acceptance"):
        perform(case, "accept", STATION, LATER)
    with pytest.raises(InvalidTransition):
        perform(new_case(), "accept", STATION, LATER)


# -- refusing, voiding ------------------------------------------------------------------------------------

def test_a_refusal_says_why_and_ends_the_report():
    case = pending_case()
    outcome = perform(case, "refuse", STATION, LATER, reason="not_city_matter", note="a private courtyard")
    assert (case.status, case.deadline) == (Status.REFUSED, None)
    # the reason is the system's word (read in the reader's language), the note the person's own
    assert note_text(outcome.steps[0].note) == "not a city matter: a private courtyard"
    assert note_text(outcome.steps[0].note, "zh") == "不属于城市管理事项：a private courtyard"
    assert note_text(perform(pending_case(), "refuse", STATION, LATER, reason="duplicate").steps[0].note,
                     "zh") == "重复上报"
    assert dict(outcome.events[0].detail) == {"reason": "not_city_matter"}
    assert available(case, COMMAND, LATER) == []


def test_an_unknown_refusal_reason_is_refused_naming_reason():
    case = pending_case()
    with pytest.raises(InvalidArgument, match="unknown reason") as refused:
        perform(case, "refuse", STATION, LATER, reason="lazy")
    assert refused.value.field == "reason" and case.status == Status.PENDING_ACCEPTANCE


def test_refusing_for_another_reason_needs_a_note():
    with pytest.raises(InvalidArgument) as refused:
        perform(pending_case(), "refuse", STATION, LATER, reason="other", note="  ")
    assert refused.value.field == "note"


def test_refusing_a_closed_case_is_a_conflict():
    case = closed_case()
    with pytest.raises(InvalidTransition):
        perform(case, "refuse", STATION, LATER, reason="already_fixed")
    assert case.status == Status.CLOSED


def test_only_command_voids_and_a_voided_case_is_final():
    case = new_case()
    with pytest.raises(NotAllowed):
        perform(case, "void", STATION, LATER, reason="entered twice")
    perform(case, "void", COMMAND, LATER, reason="entered twice by mistake")
    assert (case.status, case.deadline) == (Status.VOIDED, None)
    with pytest.raises(InvalidTransition):
        perform(case, "void", COMMAND, LATER, reason="again")
    with pytest.raises(InvalidTransition):
        perform(closed_case(), "void", COMMAND, LATER, reason="too late")


# -- merging ------------------------------------------------------------------------------------------------

def test_a_merged_report_ends_merged_into_the_case_it_duplicates():
    from services.escalation.domain.acceptance import absorb

    case, into = pending_case(), new_case(id="c2", number="20260105-000002")
    outcome = perform(case, "merge", STATION, LATER, into=into, note="same lamp")
    assert (case.status, case.merged_into, case.deadline) == (Status.MERGED, "c2", None)
    assert note_text(outcome.steps[0].note) == "merged into 20260105-000002: same lamp"
    assert note_text(outcome.steps[0].note, "zh") == "已合并到 20260105-000002：same lamp"
    assert dict(outcome.events[0].detail) == {"into": "c2", "number": "20260105-000002"}
    noted = absorb(into, case, STATION, LATER)
    assert types(noted) == ["merged_in"] and into.status == Status.OPEN


def test_merging_a_case_into_itself_is_a_conflict():
    case = pending_case()
    with pytest.raises(InvalidTransition, match="itself"):
        perform(case, "merge", STATION, LATER, into=case)
    assert case.status == Status.PENDING_ACCEPTANCE


def test_merging_into_a_closed_case_is_a_conflict():
    case = pending_case()
    with pytest.raises(InvalidTransition, match="closed"):
        perform(case, "merge", STATION, LATER, into=replace(closed_case(), id="c2"))


def test_merging_into_nothing_the_caller_sees_is_an_argument_problem_in_the_domain():
    """The handler answers 404 for a case outside the caller's area before the domain runs
    (``handlers._merge_target``); the domain itself refuses a missing target naming ``into``."""
    with pytest.raises(InvalidArgument) as refused:
        perform(pending_case(), "merge", STATION, LATER, into=None)
    assert refused.value.field == "into"


# -- the severity, set at acceptance ------------------------------------------------------------------------

def test_the_severity_set_at_acceptance_gives_the_rule_of_that_severity():
    case = pending_case()
    outcome = perform(case, "set_severity", STATION, NOW + timedelta(minutes=5), severity=URGENT)
    assert case.severity == "urgent" and outcome.steps[0].note == "normal → urgent"
    perform(case, "accept", STATION, LATER)
    assert case.deadline == LATER + HOUR, "the urgent rule's level-1 limit"


def test_a_severity_may_move_the_start_level():
    case = pending_case()
    perform(case, "set_severity", STATION, NOW, severity=Severity("urgent", WAITING, Level.SUBCENTER))
    assert case.level == Level.SUBCENTER


def test_an_unknown_severity_is_refused_naming_severity():
    with pytest.raises(InvalidArgument) as refused:
        perform(pending_case(), "set_severity", STATION, NOW, severity="catastrophic")
    assert refused.value.field == "severity"


def test_the_severity_is_not_changed_after_acceptance():
    with pytest.raises(InvalidTransition, match="set at acceptance"):
        perform(new_case(), "set_severity", STATION, NOW, severity=URGENT)


# -- the named handler (承办人) ---------------------------------------------------------------------------

def test_the_unit_holding_the_case_names_its_handler_and_an_escalation_ends_the_naming():
    case = new_case(start_level=2)
    outcome = perform(case, "assign", STATION, NOW, assignee=LI)
    assert (case.handler, outcome.steps[0].note) == ("li", "li")
    assert dict(outcome.events[0].detail) == {"assignee": "li", "unit": "S1"}
    perform(case, "escalate", STATION, NOW, reason="needs the sub-center")
    assert case.handler is None, "the sub-center names its own"
    perform(case, "assign", SUBCENTER, NOW, assignee=Person("zhao", frozenset({"C1"})))
    assert case.handler == "zhao"
    perform(case, "assign", SUBCENTER, NOW, assignee=None)
    assert case.handler is None


def test_an_assignee_outside_the_unit_is_refused_naming_assignee():
    case = new_case(start_level=2)
    with pytest.raises(InvalidArgument) as refused:
        perform(case, "assign", STATION, NOW, assignee=Person("zhao", frozenset({"C1"})))
    assert refused.value.field == "assignee" and case.assignee is None


def test_only_the_unit_holding_the_case_names_a_handler():
    with pytest.raises(NotAllowed):
        perform(new_case(start_level=2), "assign", SUBCENTER, NOW, assignee=Person("zhao", frozenset({"C1"})))
    with pytest.raises(NotAllowed):
        perform(new_case(), "assign", GRID_WORKER, NOW, assignee=None)


def test_a_report_awaiting_acceptance_has_no_handler_to_name():
    with pytest.raises(InvalidTransition, match="accept it first"):
        perform(pending_case(start_level=2), "assign", STATION, NOW, assignee=LI)


def test_a_department_names_its_own_handler_on_its_part():
    from services.escalation.domain.departments import open_assignments
    from shared.departments import Department

    case = new_case(start_level=2)
    open_assignments(case, [(Department("water", "自来水公司", "Water", "HQ"), "lead")], NOW)
    desk = Actor("department", "water-desk", None, "water")
    perform(case, "assign", desk, NOW, assignee=Person("zhang", frozenset({"water"})))
    assert case.assignments[0].assignee == "zhang" and case.handler is None
    with pytest.raises(InvalidArgument):
        perform(case, "assign", desk, NOW, assignee=LI)


# -- statistics: a case is counted from its acceptance -------------------------------------------------------

def test_a_case_that_waited_is_measured_and_replayed_from_its_acceptance():
    case = pending_case()
    steps = list(perform(case, "accept", STATION, NOW + 10 * HOUR).steps)
    steps = [*steps]
    opened = new_case(pending=True, policy=WAITING)
    from services.escalation.domain.timeline import Step
    from shared.vocabulary import StepType

    timeline = [Step(NOW, StepType.OPENED, Level.GRID, "system"), *steps,
                Step(NOW + 11 * HOUR, StepType.RESOLVED, Level.GRID, "wang", "fixed"),
                Step(NOW + 12 * HOUR, StepType.VERIFIED, Level.GRID, "li"),
                Step(NOW + 12 * HOUR, StepType.CLOSED, Level.GRID, "li")]
    facts = measure(timeline, opened.policy, OWNERS, (), NOW + 13 * HOUR, closed_now=True)
    assert facts.opened_at == NOW + 10 * HOUR and facts.time_to_close == 2 * 3600
    assert facts.on_time, "waiting ten hours for acceptance missed no level deadline"
    assert replay(timeline, opened.policy, OTHER_OWNERS).escalations == {}


def test_a_waiting_extension_request_lapses_when_the_case_is_merged_or_voided():
    """Found by the property test: a merged case kept its extension request."""
    for action, arguments in (("merge", {"into": new_case(id="c2", number="20260105-000002")}),
                              ("void", {"reason": "entered twice"})):
        case = new_case()
        perform(case, "request_extension", GRID_WORKER, NOW, amount={"amount": 1, "unit": "hours"}, reason="parts")
        perform(case, action, STATION if action == "merge" else COMMAND, LATER, **arguments)
        assert case.pending_extension is None
