"""Escalation's use cases through their handlers, with a fake unit of work: no database, no broker."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.escalation import handlers
from services.escalation.domain.errors import InvalidArgument, NotAllowed
from shared.auth import Identity
from shared.clock import FakeClock
from shared.messages import Envelope, events, make_message, read_message
from shared.policy import load_policy
from shared.vocabulary import Level, Status
from tests.support.cases import CALENDAR_HOURS_POLICY
from tests.unit.fakes import FakeCaseStore, FakeUnitOfWork

POLICY = load_policy(CALENDAR_HOURS_POLICY)
OWNERS = events.Owners(grid=events.AreaRef("G1", "g1"), station=events.AreaRef("S1", "s1"),
                       subcenter=events.AreaRef("C1", "c1"), hq=events.AreaRef("HQ", "city"))
AREAS = {"G1": ("grid", "g1", "S1"), "G2": ("grid", "g2", "S1"), "S1": ("station", "s1", "C1"),
         "C1": ("subcenter", "c1", "HQ"), "HQ": ("hq", "city", None)}
WORKER = Identity("grid_worker", "wang", "G1")
STATION = Identity("station", "li", "S1")
COMMAND = Identity("command", "chen")


def opened(clock: FakeClock, case_id: str = "c1", **changes) -> FakeUnitOfWork:
    uow = FakeUnitOfWork(FakeCaseStore(AREAS))
    message = events.CaseDispatched(
        case_id=case_id, number="20260105-000001", category="street_light", severity="normal",
        reported_at=clock.now(), areas_version=1, start_level=Level.GRID, owners=OWNERS, description="lamp out",
        location=events.Location(102.2, 27.9), reporter="wang", **changes)
    handlers.open_cases([message], uow, policy=POLICY, clock=clock)
    return uow


def act(uow, clock, who, action, **arguments):
    command = handlers.TakeAction("c1", action, arguments, who, handlers.etag(uow.store.revisions["c1"]))
    return handlers.take_action(command, uow, clock=clock, policy=POLICY)


def test_a_dispatched_case_opens_at_its_level_with_the_policy_frozen_and_says_so():
    clock = FakeClock()
    uow = opened(clock)
    case = uow.store.cases["c1"]
    assert case.level == Level.GRID and case.deadline == clock.now() + timedelta(hours=4)
    [message] = uow.published
    assert message.TYPE == "case.opened" and message.owner.area_id == "G1"


def test_the_owner_acknowledges_and_the_case_says_so_on_the_bus():
    clock = FakeClock()
    uow = opened(clock)
    case, revision = act(uow, clock, WORKER, "acknowledge")
    assert case.status == Status.ACKNOWLEDGED and revision == 2
    assert uow.published[-1].TYPE == "case.acknowledged"


def test_an_action_under_a_stale_etag_changes_nothing():
    clock = FakeClock()
    uow = opened(clock)
    stale = handlers.TakeAction("c1", "acknowledge", {}, WORKER, '"0"')
    with pytest.raises(handlers.StaleETag):
        handlers.take_action(stale, uow, clock=clock, policy=POLICY)
    assert uow.store.cases["c1"].status == Status.OPEN and len(uow.published) == 1


def test_a_case_outside_the_callers_area_is_as_if_it_did_not_exist():
    clock = FakeClock()
    uow = opened(clock)
    with pytest.raises(LookupError):
        act(uow, clock, Identity("grid_worker", "liu", "G2"), "acknowledge")


def test_a_station_may_not_resolve_a_case_its_grid_worker_owns():
    clock = FakeClock()
    uow = opened(clock)
    with pytest.raises(NotAllowed):
        act(uow, clock, STATION, "resolve", note="done")


def test_a_transfer_names_a_unit_and_the_case_restarts_there_and_dispatch_hears_of_it():
    clock = FakeClock()
    uow = opened(clock)
    case, _ = act(uow, clock, COMMAND, "transfer", to="G2", reason="other side of the road")
    assert case.owners.grid.id == "G2" and case.level == Level.GRID
    moved = uow.of_type(events.CaseTransferred)[-1]
    assert moved.owners.grid.id == "G2" and moved.level is Level.GRID


def test_a_transfer_to_an_unknown_unit_is_an_argument_error():
    clock = FakeClock()
    uow = opened(clock)
    with pytest.raises(InvalidArgument):
        act(uow, clock, COMMAND, "transfer", to="NOWHERE", reason="r")


def test_a_failed_verification_from_intake_sends_the_case_to_rework_and_a_passed_one_closes_it():
    clock = FakeClock()
    uow = opened(clock)
    act(uow, clock, WORKER, "resolve", note="bulb replaced")
    # the grid worker fixed it on the spot: the station checks it (never the person who made the fix)
    handlers.verify_case(events.CaseVerified(case_id="c1", passed=False, verifier="li", at=clock.now(),
                                             note="still dark"), uow, clock=clock)
    assert uow.store.cases["c1"].status == Status.REWORK and uow.published[-1].TYPE == "case.reworked"
    assert not uow.of_type(events.CaseVerified), "intake's verification is not published again"
    act(uow, clock, WORKER, "resolve", note="fuse replaced")
    handlers.verify_case(events.CaseVerified(case_id="c1", passed=True, verifier="wang", at=clock.now()), uow,
                         clock=clock)
    assert uow.store.cases["c1"].status == Status.VERIFYING, "the grid worker who fixed it does not verify it"
    handlers.verify_case(events.CaseVerified(case_id="c1", passed=True, verifier="li", at=clock.now()), uow,
                         clock=clock)
    assert uow.store.cases["c1"].status == Status.CLOSED and uow.published[-1].TYPE == "case.closed"


def test_a_verification_the_case_no_longer_awaits_changes_nothing():
    clock = FakeClock()
    uow = opened(clock)
    before = len(uow.published)
    handlers.verify_case(events.CaseVerified(case_id="c1", passed=True, verifier="wang", at=clock.now()), uow,
                         clock=clock)
    assert uow.store.cases["c1"].status == Status.OPEN and len(uow.published) == before


def test_a_new_area_version_reroutes_the_case_keeping_its_level_and_deadline():
    clock = FakeClock()
    uow = opened(clock)
    deadline = uow.store.cases["c1"].deadline
    renamed = events.Owners(grid=events.AreaRef("G1b", "g1b"), station=OWNERS.station, subcenter=OWNERS.subcenter,
                            hq=OWNERS.hq)
    handlers.transfer_case(events.CaseTransferred(case_id="c1", owners=renamed, level=None, reason="v2",
                                                  actor="dispatch"), uow, clock=clock)
    case = uow.store.cases["c1"]
    assert case.owners.grid.id == "G1b" and case.deadline == deadline
    assert [m.TYPE for m in uow.published[-2:]] == ["case.transferred", "case.rerouted"]
    decided = uow.of_type(events.CaseTransferred)[-1]
    assert decided.owners == renamed and decided.level is None, "dispatch and intake take what escalation decided"


def test_a_reroute_computed_before_a_staff_transfer_does_not_undo_it_and_the_case_keeps_its_owners():
    """Dispatch proposed owners from a record that had not yet taken the staff's transfer (an area version
    activated meanwhile): applied, it silently moved the case back out of the unit staff had chosen."""
    clock = FakeClock()
    uow = opened(clock)
    act(uow, clock, COMMAND, "transfer", to="G2", reason="other side of the road")
    transferred = uow.store.revisions["c1"]
    renamed = events.Owners(grid=events.AreaRef("G1b", "g1b"), station=OWNERS.station, subcenter=OWNERS.subcenter,
                            hq=OWNERS.hq)
    for basis in (None, transferred - 1):  # from the owners the case opened with; from a record one behind
        before = len(uow.published)
        handlers.transfer_case(received(events.CaseTransferred(case_id="c1", owners=renamed, level=None,
                                                               reason="v2", actor="dispatch", basis=basis),
                                        "dispatch"), uow, clock=clock)
        case = uow.store.cases["c1"]
        assert case.owners.grid.id == "G2" and "rerouted" not in [s.type for s in uow.store.steps["c1"]]
        [kept] = uow.published[before:]
        assert kept.TYPE == "case.transferred" and kept.owners.grid.id == "G2", "dispatch takes the owners back"
    current = uow.store.revisions["c1"]
    handlers.transfer_case(received(events.CaseTransferred(case_id="c1", owners=renamed, level=None, reason="v2",
                                                           actor="dispatch", basis=current), "dispatch"),
                           uow, clock=clock)
    assert uow.store.cases["c1"].owners.grid.id == "G1b", "computed after the transfer: applied"


def received(message, producer: str):
    return read_message(Envelope.from_json(make_message(message, occurred_at=FakeClock().now(),
                                                        producer=producer).to_json()))


def test_a_staff_transfer_dispatch_still_sends_is_not_applied_and_the_owners_the_case_has_are_published_again():
    """A station pulling a case that went up to its sub-center back to level 1, through dispatch's old
    endpoint: that message carried no permission check, so escalation does not apply it."""
    clock = FakeClock()
    uow = opened(clock)
    act(uow, clock, WORKER, "escalate", reason="needs the station")
    act(uow, clock, STATION, "escalate", reason="needs the sub-center")
    before = len(uow.published)
    pulled = events.CaseTransferred(case_id="c1", owners=OWNERS, level=Level.GRID, reason="mine", actor="li")
    handlers.transfer_case(received(pulled, "dispatch"), uow, clock=clock)
    case = uow.store.cases["c1"]
    assert case.level == Level.SUBCENTER and case.status == Status.OPEN
    assert [m.TYPE for m in uow.published[before:]] == [], "the same owners: nothing to correct"
    elsewhere = events.CaseTransferred(case_id="c1", owners=events.Owners(
        grid=events.AreaRef("G2", "g2"), station=OWNERS.station, subcenter=OWNERS.subcenter, hq=OWNERS.hq),
        level=Level.GRID, reason="mine", actor="li")
    handlers.transfer_case(received(elsewhere, "dispatch"), uow, clock=clock)
    assert uow.store.cases["c1"].owners == OWNERS and uow.store.cases["c1"].level == Level.SUBCENTER
    [kept] = uow.published[before:]
    assert kept.TYPE == "case.transferred" and kept.owners == OWNERS and kept.level is None


def test_escalation_does_not_read_back_its_own_transfers():
    clock = FakeClock()
    uow = opened(clock)
    case, _ = act(uow, clock, COMMAND, "transfer", to="G2", reason="other side of the road")
    before = len(uow.published)
    handlers.transfer_case(received(uow.of_type(events.CaseTransferred)[-1], "escalation"), uow, clock=clock)
    assert len(uow.published) == before


def test_a_station_transfers_only_inside_its_own_area_and_a_grid_worker_not_at_all():
    clock = FakeClock()
    uow = opened(clock)
    with pytest.raises(NotAllowed):
        act(uow, clock, WORKER, "transfer", to="G2", reason="my neighbour's")
    act(uow, clock, WORKER, "escalate", reason="needs the station")
    case, _ = act(uow, clock, STATION, "transfer", to="G2", reason="other side of the road")
    assert case.owners.grid.id == "G2" and case.level == Level.GRID


def test_the_scheduler_fires_only_what_is_due_and_dates_the_next_deadline_from_the_missed_one():
    clock = FakeClock()
    uow = opened(clock)
    missed = uow.store.cases["c1"].deadline
    clock.advance(timedelta(hours=4) - timedelta(seconds=1))
    assert handlers.escalate_due(500, uow, clock=clock) == 0
    clock.advance(timedelta(minutes=30))
    assert handlers.escalate_due(500, uow, clock=clock) == 1
    case = uow.store.cases["c1"]
    assert case.level == Level.STATION and case.deadline == missed + timedelta(hours=8)
    assert uow.published[-1].TYPE == "case.escalated" and uow.published[-1].scheduled_at == missed


def test_escalations_keep_their_own_copy_of_the_published_hierarchy():
    uow = FakeUnitOfWork(FakeCaseStore())
    message = events.AreasPublished(version=3, areas=(events.PublishedArea("HQ", "city", "hq"),))
    handlers.keep_areas(message, uow)
    assert uow.store.published_areas == (3, message.areas)
