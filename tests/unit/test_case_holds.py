"""Extensions (延期) and suspension (挂账): who grants them, their caps, and what they do to the clock."""
import pytest

from services.escalation.domain.actions import perform
from services.escalation.domain.deadlines import Limit
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed
from services.escalation.domain.timers import escalate_due
from shared.vocabulary import Level, Status
from tests.support.cases import (
    COMMAND,
    GRID_WORKER,
    HOUR,
    NOW,
    OTHER_STATION,
    STATION,
    SUBCENTER,
    SUPERVISOR,
    new_case,
    resolved_case,
    suspended,
)

LATER = NOW + HOUR


def requested(case=None, hours=6, actor=GRID_WORKER):
    case = case or new_case()
    perform(case, "request_extension", actor, LATER, amount=Limit(hours), reason="waiting for a part")
    return case


def test_the_level_above_approves_an_extension_which_moves_the_deadline_by_its_amount():
    case = requested()
    outcome = perform(case, "approve_extension", STATION, LATER)
    assert case.deadline == NOW + 4 * HOUR + 6 * HOUR and case.extensions == (Limit(6),)
    assert case.pending_extension is None and [str(s.type) for s in outcome.steps] == ["extended"]


def test_a_request_is_a_timeline_step_with_its_amount_and_leaves_the_deadline():
    case = new_case()
    outcome = perform(case, "request_extension", GRID_WORKER, LATER, amount={"amount": 90, "unit": "minutes"},
                      reason="part ordered")
    assert outcome.events[0].type == "case.extension_requested"
    assert outcome.events[0].detail == {"amount": {"amount": 90.0, "unit": "minutes"}}
    assert case.deadline == NOW + 4 * HOUR and case.pending_extension.amount == Limit(90, "minutes")


@pytest.mark.parametrize("actor", [GRID_WORKER, SUBCENTER, OTHER_STATION, COMMAND])
def test_only_the_owner_at_the_level_directly_above_decides_on_an_extension(actor):
    with pytest.raises(NotAllowed):
        perform(requested(), "approve_extension", actor, LATER)
    with pytest.raises(NotAllowed):
        perform(requested(), "refuse_extension", actor, LATER, reason="no")


def test_a_supervisor_decides_on_headquarters_extensions():
    case = requested(new_case(start_level=4), actor=COMMAND)
    with pytest.raises(NotAllowed):
        perform(case, "approve_extension", COMMAND, LATER)
    perform(case, "approve_extension", SUPERVISOR, LATER)
    assert case.deadline == NOW + 48 * HOUR + 6 * HOUR


def test_a_refused_extension_leaves_the_deadline_and_needs_a_reason():
    case = requested()
    with pytest.raises(InvalidArgument):
        perform(case, "refuse_extension", STATION, LATER, reason="")
    outcome = perform(case, "refuse_extension", STATION, LATER, reason="fix it today")
    assert case.deadline == NOW + 4 * HOUR and case.pending_extension is None
    assert outcome.events[0].type == "case.extension_refused"


def test_one_request_waits_at_a_time_and_there_must_be_one_to_decide():
    case = requested()
    with pytest.raises(InvalidTransition):
        requested(case)
    with pytest.raises(InvalidTransition):
        perform(new_case(), "approve_extension", STATION, LATER)


def test_extensions_are_capped_in_number():
    case = new_case()
    for _ in range(2):
        requested(case, hours=1)
        perform(case, "approve_extension", STATION, LATER)
    with pytest.raises(InvalidTransition):
        requested(case, hours=1)


def test_extensions_are_capped_in_total_length():
    case = requested(hours=40)
    perform(case, "approve_extension", STATION, LATER)
    with pytest.raises(InvalidArgument):
        requested(case, hours=9)
    requested(case, hours=8)


@pytest.mark.parametrize("amount", [Limit(0), {"amount": -1}, {"amount": 1, "unit": "fortnights"}, "soon"])
def test_an_extension_amount_must_be_a_positive_time(amount):
    with pytest.raises(InvalidArgument):
        perform(new_case(), "request_extension", GRID_WORKER, LATER, amount=amount, reason="r")


def test_an_extension_approved_after_the_headquarters_deadline_counts_from_that_deadline():
    case = requested(new_case(start_level=4), hours=10, actor=COMMAND)
    late = NOW + 50 * HOUR
    escalate_due(case, late, case.timer_token)
    assert case.overdue
    perform(case, "approve_extension", SUPERVISOR, late)
    assert case.deadline == NOW + 58 * HOUR and not case.overdue


def test_a_pending_request_lapses_when_the_case_escalates():
    case = requested()
    escalate_due(case, NOW + 4 * HOUR, case.timer_token)
    assert case.level == Level.STATION and case.pending_extension is None


def test_suspension_stops_the_clock_and_resuming_restarts_it_with_the_time_that_was_left():
    case = new_case()
    perform(case, "acknowledge", GRID_WORKER, NOW)
    outcome = suspended(case, LATER, reason="owner abroad")
    assert case.status == Status.SUSPENDED and case.deadline is None and case.due_at is None
    assert [e.type for e in outcome.events] == ["case.suspended"]
    resumed_at = NOW + 100 * HOUR
    assert not escalate_due(case, resumed_at, case.timer_token)
    perform(case, "resume", GRID_WORKER, resumed_at)
    assert case.status == Status.ACKNOWLEDGED and case.deadline == resumed_at + 3 * HOUR


def test_suspending_needs_a_reason_and_a_working_case():
    with pytest.raises(InvalidArgument):
        perform(new_case(), "suspend", GRID_WORKER, LATER, reason="")
    with pytest.raises(InvalidTransition):
        perform(resolved_case(), "suspend", GRID_WORKER, LATER, reason="r")


def test_only_a_suspended_case_resumes_and_a_suspended_case_takes_no_other_action():
    with pytest.raises(InvalidTransition):
        perform(new_case(), "resume", GRID_WORKER, LATER)
    case = new_case()
    suspended(case, LATER)
    for action, args in [("acknowledge", {}), ("resolve", {"note": "n"}), ("escalate", {"reason": "r"})]:
        with pytest.raises(InvalidTransition):
            perform(case, action, GRID_WORKER, LATER, **args)


def test_an_overdue_headquarters_case_stays_overdue_through_a_suspension_and_is_flagged_once():
    case = new_case(start_level=4)
    late = NOW + 50 * HOUR
    assert [str(s.type) for s in escalate_due(case, late, case.timer_token).steps] == ["overdue"]
    suspended(case, late)
    perform(case, "resume", COMMAND, late + HOUR)
    assert case.overdue and not case.is_due(late + 2 * HOUR)
    assert not escalate_due(case, late + 2 * HOUR, case.timer_token)


# suspension needs the level above (挂账 审批)

def test_an_owner_cannot_stop_their_own_clock_a_suspension_waits_for_the_level_above():
    case = new_case()
    deadline = case.deadline
    outcome = perform(case, "suspend", GRID_WORKER, LATER, reason="waiting for the budget")
    assert [str(s.type) for s in outcome.steps] == ["suspension_requested"]
    assert case.status == Status.OPEN and case.deadline == deadline and case.pending_suspension.reason
    with pytest.raises(NotAllowed):
        perform(case, "approve_suspension", GRID_WORKER, LATER)
    with pytest.raises(NotAllowed):
        perform(case, "approve_suspension", OTHER_STATION, LATER)
    with pytest.raises(InvalidTransition):
        perform(case, "suspend", GRID_WORKER, LATER, reason="again")
    approved = perform(case, "approve_suspension", STATION, LATER + HOUR)
    assert case.status == Status.SUSPENDED and case.time_left.seconds == 2 * 3600 and case.pending_suspension is None
    assert approved.steps[0].actor == STATION.user and approved.events[0].detail == {"requested_by": "wang"}


def test_the_level_above_may_refuse_a_suspension_and_the_clock_never_stopped():
    case = new_case()
    deadline = case.deadline
    perform(case, "suspend", GRID_WORKER, LATER, reason="waiting for the budget")
    with pytest.raises(InvalidArgument):
        perform(case, "refuse_suspension", STATION, LATER, reason=" ")
    outcome = perform(case, "refuse_suspension", STATION, LATER, reason="fix it now")
    assert [str(s.type) for s in outcome.steps] == ["suspension_refused"]
    assert case.status == Status.OPEN and case.deadline == deadline and case.pending_suspension is None
    with pytest.raises(InvalidTransition):
        perform(case, "approve_suspension", STATION, LATER)


def test_a_headquarters_suspension_is_approved_by_a_supervisor():
    case = new_case(start_level=4)
    perform(case, "suspend", COMMAND, LATER, reason="court order awaited")
    with pytest.raises(NotAllowed):
        perform(case, "approve_suspension", COMMAND, LATER)
    perform(case, "approve_suspension", SUPERVISOR, LATER)
    assert case.status == Status.SUSPENDED


def test_a_waiting_suspension_lapses_when_the_case_escalates_or_is_resolved():
    case = new_case()
    perform(case, "suspend", GRID_WORKER, LATER, reason="r")
    escalate_due(case, NOW + 4 * HOUR, case.timer_token)
    assert case.level == Level.STATION and case.pending_suspension is None
    case = new_case()
    perform(case, "suspend", GRID_WORKER, LATER, reason="r")
    perform(case, "resolve", GRID_WORKER, LATER, note="done after all")
    assert case.pending_suspension is None


def test_the_policy_may_let_the_owners_of_some_levels_suspend_at_once():
    from dataclasses import replace

    from tests.support.cases import POLICY

    case = new_case(start_level=4, policy=replace(POLICY, suspend_without_approval=(4,)))
    outcome = perform(case, "suspend", COMMAND, LATER, reason="court order awaited")
    assert [str(s.type) for s in outcome.steps] == ["suspended"] and case.status == Status.SUSPENDED
    case = new_case(policy=replace(POLICY, suspend_without_approval=(4,)))
    perform(case, "suspend", GRID_WORKER, LATER, reason="r")
    assert case.status == Status.OPEN and case.pending_suspension is not None


@pytest.mark.parametrize("request_action", ["suspend", "request_extension"])
def test_a_request_waiting_for_the_level_above_lapses_when_the_case_is_voided(request_action):
    """A suspension asked of the station, then the case voided: the request stayed, waiting on an ended case."""
    case = new_case()
    arguments = {"amount": Limit(6)} if request_action == "request_extension" else {}
    perform(case, request_action, GRID_WORKER, LATER, reason="waiting for the budget", **arguments)
    perform(case, "void", COMMAND, LATER, reason="entered twice")
    assert case.status == Status.VOIDED
    assert case.pending_suspension is None and case.pending_extension is None
