"""Each staff action of the closed loop: who may take it, from which state, with which arguments."""
from copy import deepcopy
from dataclasses import replace

import pytest

from services.escalation.domain.actions import ACTIONS, arguments_of, perform
from services.escalation.domain.deadlines import Limit
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed
from services.escalation.domain.permissions import Actor, verifying_level
from services.escalation.domain.timers import rerouted
from shared.owners import AreaRef, Owners
from shared.vocabulary import Level, Status
from tests.support.cases import (
    ADMIN,
    COMMAND,
    GRID_WORKER,
    HOUR,
    NOW,
    OTHER_GRID_WORKER,
    OTHER_OWNERS,
    OTHER_STATION,
    OWNER,
    OWNERS,
    STATION,
    SUBCENTER,
    SUPERVISOR,
    closed_case,
    new_case,
    resolved_case,
)

LATER = NOW + HOUR


def types(outcome):
    return [str(step.type) for step in outcome.steps]


# opening

def test_a_case_opens_at_the_grid_with_the_grid_limit_and_a_case_opened_event():
    case = new_case()
    assert (case.level, case.status, case.owner.area_id) == (Level.GRID, Status.OPEN, "G1")
    assert case.deadline == NOW + 4 * HOUR


def test_a_case_in_no_grid_opens_at_the_station_marked_for_triage():
    case = new_case(owners=replace(OWNERS, grid=None), triage=True)
    assert case.level == Level.STATION and case.owner.area_id == "S1" and case.triage


# acknowledge

def test_the_owner_acknowledges_an_open_case_and_the_clock_keeps_running():
    case = new_case()
    outcome = perform(case, "acknowledge", GRID_WORKER, LATER)
    assert case.status == Status.ACKNOWLEDGED and case.deadline == NOW + 4 * HOUR
    assert types(outcome) == ["acknowledged"] and [e.type for e in outcome.events] == ["case.acknowledged"]
    assert outcome.steps[0].actor == "wang" and outcome.steps[0].level == Level.GRID


@pytest.mark.parametrize("actor", [OTHER_GRID_WORKER, STATION, SUBCENTER, COMMAND, SUPERVISOR, ADMIN])
def test_nobody_but_the_owner_at_the_current_level_may_acknowledge(actor):
    with pytest.raises(NotAllowed):
        perform(new_case(), "acknowledge", actor, LATER)


def test_an_acknowledged_case_cannot_be_acknowledged_again():
    case = new_case()
    perform(case, "acknowledge", GRID_WORKER, LATER)
    with pytest.raises(InvalidTransition):
        perform(case, "acknowledge", GRID_WORKER, LATER)


# resolve

def test_resolving_awaits_verification_with_the_verification_deadline():
    case = new_case()
    token = case.timer_token
    outcome = perform(case, "resolve", GRID_WORKER, LATER, note="lamp replaced")
    assert case.status == Status.VERIFYING and case.resolved_level == Level.GRID
    assert case.deadline == LATER + 24 * HOUR and case.timer_token > token
    assert types(outcome) == ["resolved"] and outcome.steps[0].note == "lamp replaced"


@pytest.mark.parametrize("note", ["", "   ", None])
def test_resolving_needs_a_note_of_what_was_done(note):
    with pytest.raises(InvalidArgument):
        perform(new_case(), "resolve", GRID_WORKER, LATER, note=note)


def test_a_closed_case_cannot_be_resolved():
    with pytest.raises(InvalidTransition):
        perform(closed_case(), "resolve", GRID_WORKER, LATER, note="again")


def test_a_higher_level_cannot_resolve_a_case_still_at_the_grid():
    with pytest.raises(NotAllowed):
        perform(new_case(), "resolve", STATION, LATER, note="done")


# escalate by hand (上报)

def test_the_owner_escalates_by_hand_and_the_next_level_gets_its_full_limit():
    case = new_case()
    perform(case, "acknowledge", GRID_WORKER, LATER)
    outcome = perform(case, "escalate", GRID_WORKER, LATER, reason="beyond my authority")
    assert (case.level, case.status, case.deadline) == (Level.STATION, Status.OPEN, LATER + 8 * HOUR)
    assert types(outcome) == ["escalated"] and outcome.steps[0].level == Level.STATION


def test_escalating_by_hand_skips_a_level_that_has_no_owner():
    case = new_case(owners=replace(OWNERS, station=None))
    perform(case, "escalate", GRID_WORKER, LATER, reason="needs the sub-center")
    assert case.level == Level.SUBCENTER


def test_escalating_needs_a_reason():
    with pytest.raises(InvalidArgument):
        perform(new_case(), "escalate", GRID_WORKER, LATER, reason="")


def test_headquarters_cannot_escalate_by_hand():
    with pytest.raises(InvalidTransition):
        perform(new_case(start_level=4), "escalate", COMMAND, LATER, reason="no")


# return down (回退 / 下派)

def test_a_higher_level_returns_the_case_to_a_named_lower_level_with_its_full_limit():
    case = new_case(start_level=3)
    outcome = perform(case, "return", SUBCENTER, LATER, level="grid", reason="the grid worker can fix it")
    assert (case.level, case.status, case.deadline) == (Level.GRID, Status.OPEN, LATER + 4 * HOUR)
    assert case.owner.area_id == "G1" and types(outcome) == ["returned"]


@pytest.mark.parametrize("target", [3, 4, "subcenter", 0, "nowhere"])
def test_a_case_can_only_be_returned_to_a_level_below_its_own(target):
    with pytest.raises(InvalidArgument):
        perform(new_case(start_level=3), "return", SUBCENTER, LATER, level=target, reason="r")


def test_a_case_in_no_grid_cannot_be_returned_to_a_grid():
    case = new_case(owners=replace(OWNERS, grid=None), start_level=3)
    with pytest.raises(InvalidArgument):
        perform(case, "return", SUBCENTER, LATER, level=1, reason="r")


def test_only_the_owner_at_the_current_level_returns_a_case():
    with pytest.raises(NotAllowed):
        perform(new_case(start_level=3), "return", STATION, LATER, level=1, reason="r")


# transfer

def test_a_transfer_restarts_the_case_at_the_new_owners_level_with_that_levels_limit():
    case = new_case(start_level=2)
    other_grid = replace(OWNERS, grid=AreaRef("G2", "网格 2"))
    outcome = perform(case, "transfer", STATION, LATER, owners=other_grid, level="grid", reason="wrong street")
    assert (case.level, case.owner.area_id, case.deadline) == (Level.GRID, "G2", LATER + 4 * HOUR)
    assert types(outcome) == ["transferred"] and "G2" in outcome.steps[0].note


def test_command_may_transfer_a_case_at_any_level_and_another_station_may_not():
    perform(new_case(), "transfer", COMMAND, LATER, owners=OTHER_OWNERS, level=2, reason="r")
    with pytest.raises(NotAllowed):
        perform(new_case(start_level=2), "transfer", OTHER_STATION, LATER, owners=OTHER_OWNERS, level=2, reason="r")


def test_a_transfer_needs_owners_up_to_headquarters():
    with pytest.raises(InvalidArgument):
        perform(new_case(), "transfer", COMMAND, LATER, owners=Owners(grid=AreaRef("G9")), level=1, reason="r")


def test_a_case_awaiting_verification_cannot_be_transferred():
    with pytest.raises(InvalidTransition):
        perform(resolved_case(), "transfer", COMMAND, LATER, owners=OTHER_OWNERS, level=1, reason="r")


# verify (核查)

def test_a_passed_verification_closes_the_case_and_clears_its_deadline():
    case = resolved_case(2)
    outcome = perform(case, "verify", GRID_WORKER, LATER, passed=True, note="lamp works")
    assert case.status == Status.CLOSED and case.deadline is None
    assert types(outcome) == ["verified", "closed"]
    assert [(e.type, dict(e.detail)) for e in outcome.events] == [("case.verified", {"passed": True}),
                                                                 ("case.closed", {})]


def test_a_failed_verification_sends_the_case_to_rework_at_the_level_that_resolved_it():
    case = new_case()
    perform(case, "escalate", GRID_WORKER, NOW, reason="needs the station")
    perform(case, "resolve", STATION, NOW, note="cleared")
    outcome = perform(case, "verify", GRID_WORKER, LATER, passed=False, note="still blocked")
    assert (case.status, case.level, case.reworks) == (Status.REWORK, Level.STATION, 1)
    assert case.deadline == LATER + 8 * HOUR and types(outcome) == ["verified", "reworked"]
    perform(case, "acknowledge", STATION, LATER)
    perform(case, "resolve", STATION, LATER, note="cleared again")
    assert case.status == Status.VERIFYING


def test_a_failed_verification_needs_a_note():
    with pytest.raises(InvalidArgument):
        perform(resolved_case(2), "verify", GRID_WORKER, LATER, passed=False)


@pytest.mark.parametrize("actor", [OTHER_GRID_WORKER, STATION, COMMAND, SUPERVISOR])
def test_only_the_grid_worker_of_the_cases_grid_verifies(actor):
    with pytest.raises(NotAllowed):
        perform(resolved_case(2), "verify", actor, LATER, passed=True)


def test_the_station_verifies_a_case_in_no_grid():
    case = new_case(owners=replace(OWNERS, grid=None))
    perform(case, "resolve", STATION, NOW, note="done")
    perform(case, "verify", Actor("station", "zhou", "S1"), LATER, passed=True)
    assert case.status == Status.CLOSED


def test_a_grid_workers_fix_on_the_spot_is_verified_by_the_station_not_by_the_grid_worker():
    case = resolved_case(1)  # resolved at level 1 by the grid worker himself (就地解决)
    assert verifying_level(case) == Level.STATION and case.resolved_by == GRID_WORKER.user
    with pytest.raises(NotAllowed, match="someone other than its handler") as refused:
        perform(case, "verify", GRID_WORKER, LATER, passed=True)
    assert "GB/T 30428" in str(refused.value)
    perform(case, "verify", STATION, LATER, passed=True)
    assert case.status == Status.CLOSED


def test_nobody_verifies_a_fix_they_made_themselves():
    case = new_case(owners=replace(OWNERS, grid=None))
    perform(case, "resolve", STATION, NOW, note="done")
    with pytest.raises(NotAllowed, match="li resolved this case"):
        perform(case, "verify", STATION, LATER, passed=True)
    assert case.status == Status.VERIFYING


def test_a_resolution_tells_intake_who_verifies_and_who_resolved_with_the_after_photos():
    case = new_case()
    outcome = perform(case, "resolve", GRID_WORKER, NOW, note="bulb replaced", photos=["p1", "p2"])
    assert dict(outcome.events[0].detail) == {"verifier_level": 2, "resolved_by": "wang", "photos": ["p1", "p2"]}
    with pytest.raises(InvalidArgument) as refused:
        perform(new_case(), "resolve", GRID_WORKER, NOW, note="x", photos=[""])
    assert refused.value.field == "photos"


def test_a_case_not_awaiting_verification_cannot_be_verified():
    with pytest.raises(InvalidTransition):
        perform(new_case(), "verify", GRID_WORKER, LATER, passed=True)


# reopen

@pytest.mark.parametrize("actor", [COMMAND, SUPERVISOR, ADMIN])
def test_command_a_supervisor_or_an_admin_reopens_a_closed_case_at_the_level_that_resolved_it(actor):
    case = closed_case()
    outcome = perform(case, "reopen", actor, LATER, reason="came back")
    assert (case.status, case.level, case.deadline) == (Status.OPEN, Level.GRID, LATER + 4 * HOUR)
    assert types(outcome) == ["reopened"]


@pytest.mark.parametrize("actor", [GRID_WORKER, STATION, SUBCENTER])
def test_staff_below_headquarters_may_not_reopen(actor):
    with pytest.raises(NotAllowed):
        perform(closed_case(), "reopen", actor, LATER, reason="r")


def test_only_a_closed_case_can_be_reopened_and_only_with_a_reason():
    with pytest.raises(InvalidTransition):
        perform(new_case(), "reopen", COMMAND, LATER, reason="r")
    with pytest.raises(InvalidArgument):
        perform(closed_case(), "reopen", COMMAND, LATER, reason=" ")


# the table itself

def test_an_unknown_action_or_a_wrong_argument_is_an_invalid_argument():
    with pytest.raises(InvalidArgument):
        perform(new_case(), "close", COMMAND, LATER)
    with pytest.raises(InvalidArgument):
        perform(new_case(), "acknowledge", GRID_WORKER, LATER, colour="red")
    with pytest.raises(InvalidArgument):
        perform(new_case(), "escalate", GRID_WORKER, LATER)


def test_a_refused_action_leaves_the_case_unchanged():
    case = new_case(start_level=3)
    before = deepcopy(case)
    for action, actor, args in [("return", SUBCENTER, {"level": 4, "reason": "r"}),
                                ("resolve", STATION, {"note": "n"}), ("resume", SUBCENTER, {}),
                                ("request_extension", SUBCENTER, {"amount": Limit(99), "reason": "r"})]:
        with pytest.raises((NotAllowed, InvalidTransition, InvalidArgument)):
            perform(case, action, actor, LATER, **args)
    assert case == before


def test_the_table_names_every_action_and_its_arguments():
    assert set(ACTIONS) == {"acknowledge", "resolve", "escalate", "return", "transfer", "request_extension",
                            "approve_extension", "refuse_extension", "suspend", "approve_suspension",
                            "refuse_suspension", "resume", "verify", "reopen",
                            "assign_department", "feedback", "urge", "respond_urge", "accept", "refuse", "void",
                            "merge", "set_severity", "assign"}
    assert arguments_of("return") == {"level": True, "reason": True}
    assert arguments_of("feedback") == {"outcome": True, "note": False, "reason": False, "photos": False}
    assert arguments_of("verify") == {"passed": True, "note": False}


def test_each_action_reports_its_steps_with_the_owner_of_each_level():
    for level, actor in OWNER.items():
        outcome = perform(new_case(start_level=level), "acknowledge", actor, LATER)
        assert outcome.steps[0].level == level


# re-routing by a new area version

def test_a_reroute_changes_the_owners_and_keeps_level_and_deadline():
    case = new_case(start_level=2)
    deadline, token = case.deadline, case.timer_token
    outcome = rerouted(case, OTHER_OWNERS, LATER)
    assert (case.level, case.owner.area_id, case.deadline, case.timer_token) == (2, "S9", deadline, token)
    assert types(outcome) == ["rerouted"] and outcome.events[0].type == "case.rerouted"


def test_a_reroute_that_removes_the_grid_moves_the_case_up_with_its_deadline():
    case = new_case()
    rerouted(case, replace(OWNERS, grid=None), LATER)
    assert case.level == Level.STATION and case.deadline == NOW + 4 * HOUR


def test_a_reroute_to_the_same_owners_or_of_a_closed_case_does_nothing():
    assert not rerouted(new_case(), OWNERS, LATER)
    case = closed_case()
    assert not rerouted(case, OTHER_OWNERS, LATER) and case.owners == OWNERS


def test_a_rework_goes_to_the_first_owned_level_when_a_reroute_took_the_resolving_grid():
    case = resolved_case()
    rerouted(case, replace(OWNERS, grid=None), LATER)
    perform(case, "verify", STATION, LATER, passed=False, note="still dark")
    assert (case.status, case.level) == (Status.REWORK, Level.STATION)
