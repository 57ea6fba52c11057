"""Order-safe copies of a case: escalation's events carry the case revision (and the step's place in it),
and intake's report and dispatch's record apply only newer ones — whatever order they arrive in, in one
batch or across batches, redelivered or not. Run on the real stores over SQLite (the SQL is the rule)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.dispatch import handlers as dispatch
from services.dispatch.store import DispatchStore, area_versions
from services.escalation import handlers as escalation
from services.intake import handlers as intake
from services.intake.domain.reports import NewReport
from services.intake.store import ReportStore
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.db import make_engine
from shared.messages import Envelope, events, make_message, read_message
from shared.migrations import upgrade
from shared.owners import AreaRef, Owners
from shared.policy import load_policy
from shared.uow import UnitOfWork
from shared.vocabulary import Level
from tests.unit.fakes import FakeCaseStore, FakeUnitOfWork

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
POLICY = load_policy()
OWNERS = Owners(hq=AreaRef("HQ", "City"), subcenter=AreaRef("SC1", "Sub-center"), station=AreaRef("S1", "Station"),
                grid=AreaRef("G1", "Grid"))
MOVED = Owners(hq=AreaRef("HQ", "City"), subcenter=AreaRef("SC1", "Sub-center"), station=AreaRef("S2", "Station 2"),
               grid=AreaRef("G9", "Grid 9"))


def changed(case_id: str, event: str, status: str, revision: int | None, step: int = 0, *,
            level: Level = Level.GRID, scope: Owners | None = None) -> events.CaseChanged:
    owners = scope or OWNERS
    return events.CaseChanged(event=event, case_id=case_id, status=status, level=level, owner=owners.owner(level),
                              at=NOW, scope=scope, revision=revision, revision_step=step)


# -- the wire ------------------------------------------------------------------------------------------


def test_the_revision_travels_with_every_case_event_and_an_older_producers_event_has_none():
    sent = changed("c1", "case.acknowledged", "acknowledged", 3, 1)
    wire = json.loads(make_message(sent, occurred_at=NOW, producer="escalation").to_json())
    assert (wire["payload"]["revision"], wire["payload"]["revision_step"]) == (3, 1)
    assert events.revision_key(read_message(Envelope.from_json(json.dumps(wire)))) == (3, 1)
    for field in ("revision", "revision_step"):  # as an older escalation wrote it
        del wire["payload"][field]
    assert events.revision_key(read_message(Envelope.from_json(json.dumps(wire)))) is None
    transfer = events.CaseTransferred(case_id="c1", owners=OWNERS, level=Level.GRID, reason="r", actor="a",
                                      revision=4)
    assert events.revision_key(read_message(make_message(transfer, occurred_at=NOW, producer="escalation"))) == (4, 0)


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, True])
def test_a_revision_that_is_not_a_positive_integer_is_refused_naming_it(bad):
    wire = json.loads(make_message(changed("c1", "case.opened", "open", 1), occurred_at=NOW,
                                   producer="escalation").to_json())
    wire["payload"]["revision"] = bad
    with pytest.raises(Exception, match="revision"):
        read_message(Envelope.from_json(json.dumps(wire)))


# -- escalation publishes the revision -----------------------------------------------------------------


def test_escalation_stamps_each_event_with_the_cases_revision_after_the_save_and_its_place_in_it():
    uow = FakeUnitOfWork(FakeCaseStore())
    escalation.open_cases([events.CaseDispatched(
        case_id="c1", number="n1", category="street_light", severity="normal", reported_at=NOW, areas_version=1,
        start_level=Level.GRID, owners=OWNERS)], uow, policy=POLICY, clock=FakeClock(NOW))
    assert [(m.TYPE, events.revision_key(m)) for m in uow.published] == [("case.opened", (1, 0))]
    assert uow.published[0].scope == OWNERS
    clock = FakeClock(NOW + timedelta(days=30))  # every deadline passed: one tick, several steps
    escalation.escalate_due(10, uow, clock=clock)
    fired = uow.published[1:]
    assert len(fired) >= 2 and {events.revision_key(m)[0] for m in fired} == {2}
    assert [events.revision_key(m)[1] for m in fired] == sorted(events.revision_key(m)[1] for m in fired)
    assert len({events.revision_key(m) for m in fired}) == len(fired)


def test_escalation_publishes_the_owners_it_decides_with_the_revision_so_intake_and_dispatch_can_order_them():
    uow = FakeUnitOfWork(FakeCaseStore())
    escalation.open_cases([events.CaseDispatched(
        case_id="c1", number="n1", category="street_light", severity="normal", reported_at=NOW, areas_version=1,
        start_level=Level.GRID, owners=OWNERS)], uow, policy=POLICY, clock=FakeClock(NOW))
    escalation.transfer_case(events.CaseTransferred(case_id="c1", owners=MOVED, level=Level.GRID,
                                                    reason="wrong street", actor="cmd"), uow, clock=FakeClock(NOW))
    [kept] = uow.of_type(events.CaseTransferred)
    assert kept.owners == OWNERS and events.revision_key(kept) == (2, 0), "dispatch's staff transfer is not applied"
    escalation.transfer_case(events.CaseTransferred(case_id="c1", owners=MOVED, level=None, reason="v2",
                                                    actor="dispatch"), uow, clock=FakeClock(NOW))
    decided, rerouted = uow.published[-2:]
    assert decided.TYPE == "case.transferred" and decided.owners == MOVED and decided.level is None
    assert rerouted.TYPE == "case.rerouted" and rerouted.scope == MOVED
    assert events.revision_key(decided) == events.revision_key(rerouted) == (3, 0)


# -- intake's report -----------------------------------------------------------------------------------


@pytest.fixture
def intake_uow(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    upgrade(engine, "intake")
    yield UnitOfWork(engine, ReportStore, producer="intake", clock=FakeClock(NOW))
    engine.dispose()


def a_report(uow) -> str:
    reporter = Identity("grid_worker", "w1", area="G1")
    settings = Settings(secret="x" * 32)
    return intake.submit_report(NewReport("street_light", "lamp out", 102.26, 27.89), reporter, None, uow,
                                clock=FakeClock(NOW), policy=POLICY, settings=settings).report.id


def follow(uow, *messages) -> tuple:
    intake.follow_cases(list(messages), uow, clock=FakeClock(NOW))
    with uow:
        report = uow.store.by_id(messages[0].case_id)
    return str(report.status), report.level, report.owner_area_id, report.owners.station.id if report.owners.station \
        else None, report.case_revision, report.case_revision_step


def test_an_older_revision_after_a_newer_one_changes_nothing_across_batches(intake_uow):
    case = a_report(intake_uow)
    follow(intake_uow, changed(case, "case.opened", "open", 1, scope=OWNERS))
    newest = follow(intake_uow, changed(case, "case.resolved", "verifying", 3))
    assert newest[0] == "verifying" and newest[4:] == (3, 0)
    for late in (changed(case, "case.acknowledged", "acknowledged", 2),  # overtaken
                 changed(case, "case.resolved", "verifying", 3),  # redelivered
                 changed(case, "case.opened", "open", 1, scope=MOVED)):
        assert follow(intake_uow, late) == newest


def test_an_older_revision_after_a_newer_one_changes_nothing_in_one_batch(intake_uow):
    case = a_report(intake_uow)
    got = follow(intake_uow, changed(case, "case.opened", "open", 1, scope=OWNERS),
                 changed(case, "case.resolved", "verifying", 3), changed(case, "case.acknowledged", "acknowledged", 2),
                 changed(case, "case.opened", "open", 1, scope=MOVED))
    assert got == ("verifying", Level.GRID, "G1", "S1", 3, 0)


def test_the_steps_of_one_revision_are_ordered_too(intake_uow):
    """A tick that missed two deadlines publishes two ``case.escalated`` in one revision: the later step
    wins, whichever arrives first, and the earlier one never takes the level back down."""
    case = a_report(intake_uow)
    follow(intake_uow, changed(case, "case.opened", "open", 1, scope=OWNERS))
    to_station = changed(case, "case.escalated", "open", 2, 0, level=Level.STATION)
    to_subcenter = changed(case, "case.escalated", "open", 2, 1, level=Level.SUBCENTER)
    assert follow(intake_uow, to_subcenter)[1:3] == (Level.SUBCENTER, "SC1")
    assert follow(intake_uow, to_station)[1:3] == (Level.SUBCENTER, "SC1")
    other = a_report(intake_uow)
    follow(intake_uow, changed(other, "case.opened", "open", 1, scope=OWNERS))
    assert follow(intake_uow, changed(other, "case.escalated", "open", 2, 0, level=Level.STATION),
                  changed(other, "case.escalated", "open", 2, 1, level=Level.SUBCENTER))[1] == Level.SUBCENTER


def test_a_message_without_a_revision_applies_only_before_the_first_revision(intake_uow):
    """Dispatch's own transfer carries no revision: before escalation's first event it is the news;
    after, escalation's echo of it (with the revision) is, and a late original moves nothing back."""
    case = a_report(intake_uow)
    dispatchs = events.CaseTransferred(case_id=case, owners=MOVED, level=None, reason="v2", actor="dispatch")
    assert follow(intake_uow, dispatchs)[3] == "S2"
    follow(intake_uow, changed(case, "case.opened", "open", 1, scope=OWNERS))
    echo = events.CaseTransferred(case_id=case, owners=MOVED, level=Level.GRID, reason="r", actor="cmd",
                                  revision=2)
    back = events.CaseTransferred(case_id=case, owners=OWNERS, level=Level.GRID, reason="r", actor="cmd")
    assert follow(intake_uow, echo)[2:4] == ("G9", "S2")
    assert follow(intake_uow, back)[2:4] == ("G9", "S2")


# -- dispatch's record ---------------------------------------------------------------------------------


@pytest.fixture
def dispatch_uow(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'dispatch.db'}")
    upgrade(engine, "dispatch")
    uow = UnitOfWork(engine, DispatchStore, producer="dispatch", clock=FakeClock(NOW))
    with uow:
        uow.connection.execute(area_versions.insert().values(id=1, created_at=NOW, active=True, source="t", summary={}))
        uow.store.add([{"case_id": "c1", "number": "n1", "category": "street_light", "lon": 102.26, "lat": 27.89,
                        "version": 1, "start_level": "grid", "triage": False, "candidates": [],
                        "dispatched_at": NOW, **OWNERS.columns()}])
        uow.commit()
    yield uow
    engine.dispose()


def record(uow):
    with uow:
        return uow.store.get("c1")


def test_a_redelivered_case_closed_never_closes_a_case_reopened_since(dispatch_uow):
    clock = FakeClock(NOW)
    dispatch.close_case(changed("c1", "case.closed", "closed", 5), dispatch_uow, clock=clock)
    assert record(dispatch_uow).closed_at is not None
    dispatch.close_case(changed("c1", "case.reopened", "rework", 6), dispatch_uow, clock=clock)
    dispatch.close_case(changed("c1", "case.closed", "closed", 5), dispatch_uow, clock=clock)
    found = record(dispatch_uow)
    assert found.closed_at is None and (found.case_revision, found.case_revision_step) == (6, 0)


def test_an_older_transfer_after_a_newer_one_moves_nothing_and_an_echo_only_records_the_revision(dispatch_uow):
    newer = events.CaseTransferred(case_id="c1", owners=MOVED, level=Level.GRID, reason="r", actor="cmd", revision=4)
    older = events.CaseTransferred(case_id="c1", owners=OWNERS, level=Level.GRID, reason="r", actor="cmd", revision=3)
    dispatch.follow_transfer(newer, dispatch_uow)
    dispatch.follow_transfer(older, dispatch_uow)
    assert (record(dispatch_uow).grid_id, record(dispatch_uow).case_revision) == ("G9", 4)
    with dispatch_uow:
        dispatch_uow.store.move("c1", version=1, owners=MOVED, triage=True, candidates=[{"id": "G9"}])
        dispatch_uow.commit()
    dispatch.follow_transfer(replace_revision(newer, 5), dispatch_uow)  # the echo of the same owners
    found = record(dispatch_uow)
    assert found.triage and found.candidates == [{"id": "G9"}] and found.case_revision == 5


def replace_revision(message, revision):
    from dataclasses import replace

    return replace(message, revision=revision)
