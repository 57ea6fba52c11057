"""Intake follows a case from escalation's events in batches (up to 200 messages a batch, and two workers
may take one case's messages at once): whatever batches a case's messages come in, in whatever order they
arrive, redelivered or not, the report ends as if each had been applied alone in the order escalation
published them — the same status, level, owner, deadline, area scope, verifier, note and claim of a
verification. Each message's effect is its own, never its batch's. On SQLite and PostgreSQL alike."""
from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake import handlers
from services.intake.domain.reports import AlreadyVerified, NewReport
from services.intake.store import report_departments, reports
from shared.auth import Identity
from shared.clock import FakeClock
from shared.messages import events
from shared.owners import AreaRef, Owners
from shared.vocabulary import Level
from tests.support.intake import intake_service

NOW = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
HQ = AreaRef("HQ", "指挥部")
C1 = AreaRef("C1", "分中心 1")
EAST = Owners(grid=AreaRef("G1", "网格 1"), station=AreaRef("S1", "工作站 1"), subcenter=C1, hq=HQ)
WEST = Owners(grid=AreaRef("G2", "网格 2"), station=AreaRef("S2", "工作站 2"), subcenter=C1, hq=HQ)
NO_GRID = Owners(grid=None, station=AreaRef("S3", "工作站 3"), subcenter=AreaRef("C2", "分中心 2"), hq=HQ)
#: What intake keeps of a case: every column its events set, and the verification's claim.
FOLLOWED = ("status", "level", "owner_area_id", "owner_area_name", "deadline_at", "grid_id", "station_id",
            "subcenter_id", "status_note", "verifier_level", "resolved_by", "verification_sent_at", "duplicate_of",
            "case_revision", "case_revision_step")


@pytest.fixture(params=["sqlite", "postgres"])
def intake(request, tmp_path):
    with intake_service(request.param, tmp_path, FakeClock(NOW), "batches") as service:
        yield service


_reports = itertools.count()


def a_case(service) -> str:
    """A report whose case escalation opened (revision 1) and resolved (revision 2), with the grid
    worker's verification of that round sent (claimed): the state every generated history starts from."""
    n = next(_reports)
    worker = Identity("grid_worker", f"w{n}", "G1")
    # a street apart each: never a nearby duplicate of another example's report
    case = service.run(handlers.submit_report, NewReport("street_light", f"lamp {n}", 102.0 + n * 0.01, 27.9),
                       worker, f"k{n}").report.id
    follow(service, [changed(case, "case.opened", "open", 1, scope=EAST),
                     changed(case, "case.resolved", "verifying", 2, detail={"verifier_level": 1, "resolved_by": "li"})])
    service.run(handlers.verify_case, handlers.Verify(case, True, "", worker))
    return case


def changed(case: str, event: str, status: str, revision: int, step: int = 0, *, level: Level = Level.GRID,
            owners: Owners = EAST, **fields) -> events.CaseChanged:
    return events.CaseChanged(event=event, case_id=case, status=status, level=level, owner=owners.owner(level),
                              at=NOW, deadline=NOW + timedelta(hours=revision), revision=revision,
                              revision_step=step, **fields)


def follow(service, messages) -> None:
    service.run(handlers.follow_cases, list(messages))


def state(service, case: str) -> dict:
    with service.engine.connect() as db:
        row = db.execute(sa.select(*(reports.c[name] for name in FOLLOWED)).where(reports.c.id == case)).one()
        departments = set(db.execute(sa.select(report_departments.c.department_id)
                                     .where(report_departments.c.report_id == case)).scalars())
    return {**row._asdict(), "departments": departments}


# -- a case's history, as escalation publishes it ------------------------------------------------------

LEVELS = st.sampled_from(list(Level))
STATUSES = st.sampled_from(["open", "acknowledged", "verifying", "rework", "suspended", "closed"])
AREAS = st.sampled_from([EAST, WEST, NO_GRID])


def _at(owners: Owners, level: Level) -> Level:
    return level if owners.at(level) is not None else Level.STATION


@st.composite
def step(draw, case: str, revision: int, index: int) -> list[events.Message]:
    """One event of a save (``index``: its place among the save's events), as ``handlers.publish`` writes
    it: a re-route is a ``case.transferred`` without a level and a ``case.rerouted`` with the same key; a
    staff transfer a ``case.transferred`` with its level alone."""
    owners, kind = draw(AREAS), draw(st.sampled_from(
        ["plain", "resolved", "reworked", "rerouted", "transferred", "ended", "department"]))
    level = _at(owners, draw(LEVELS))
    at = {"level": level, "owners": owners}
    if kind == "resolved":
        verifier = _at(owners, draw(st.sampled_from([Level.GRID, Level.STATION])))
        return [changed(case, "case.resolved", "verifying", revision, index, **at,
                        detail={"verifier_level": int(verifier), "resolved_by": draw(st.sampled_from(["wang", "li"]))})]
    if kind == "reworked":
        return [changed(case, "case.reworked", "rework", revision, index, **at, detail={"reworks": revision})]
    if kind == "rerouted":
        return [events.CaseTransferred(case_id=case, owners=owners, level=None, reason="v2", actor="dispatch",
                                       revision=revision, revision_step=index),
                changed(case, "case.rerouted", draw(STATUSES), revision, index, **at, scope=owners)]
    if kind == "transferred":
        return [events.CaseTransferred(case_id=case, owners=owners, level=level, reason="wrong street", actor="cmd",
                                       revision=revision, revision_step=index)]
    if kind == "ended":
        event = draw(st.sampled_from(["case.refused", "case.voided"]))
        return [changed(case, event, event.removeprefix("case."), revision, index, **at,
                        reason=draw(st.sampled_from(["not a city matter", "a test report"])))]
    if kind == "department":
        return [changed(case, draw(st.sampled_from(["case.department_assigned", "case.department_done"])),
                        draw(STATUSES), revision, index, **at,
                        detail={"department": draw(st.sampled_from(["water", "power"]))})]
    event = draw(st.sampled_from(["case.acknowledged", "case.escalated", "case.returned", "case.closed",
                                  "case.reopened", "case.overdue", "case.warning", "case.verification_overdue",
                                  "case.extended", "case.suspended", "case.resumed", "case.opened"]))
    return [changed(case, event, draw(STATUSES), revision, index, **at,
                    scope=owners if event == "case.opened" else None)]


@st.composite
def history(draw, case: str) -> list[events.Message]:
    """Saves from revision 3 on (after the opening and the first resolution), each of one to three
    events: the messages in the order escalation publishes them."""
    messages = []
    for revision in range(3, 3 + draw(st.integers(1, 7))):
        for index in range(draw(st.integers(1, 3))):
            messages += draw(step(case, revision, index))
    return messages


@st.composite
def arrival(draw, messages: list, *, reordered: bool = True) -> list[list]:
    """The messages as a consumer may get them: cut into consecutive batches anywhere and, ``reordered``, in
    any order (two workers, a redelivery after a lost channel), some twice."""
    got = list(messages)
    if reordered:
        got = draw(st.permutations(messages))
        for again in draw(st.lists(st.sampled_from(messages), max_size=3)):
            got.insert(draw(st.integers(0, len(got))), again)
    cuts = draw(st.lists(st.booleans(), min_size=len(got) - 1, max_size=len(got) - 1))
    batches, batch = [], [got[0]]
    for message, cut in zip(got[1:], cuts, strict=True):
        if cut:
            batches.append(batch)
            batch = []
        batch.append(message)
    return [*batches, batch]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_a_cases_messages_leave_the_same_report_in_any_batches_and_any_order(intake, data):
    alone, batched = a_case(intake), a_case(intake)
    published = data.draw(history(alone), label="published")
    for message in published:  # the reference: one message a batch, as escalation published them
        follow(intake, [message])
    for batch in data.draw(arrival([_for(batched, m) for m in published]), label="batches"):
        follow(intake, batch)
    assert state(intake, batched) == state(intake, alone)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_a_cases_messages_in_order_leave_the_same_report_one_a_batch_all_in_one_or_cut_anywhere(intake, data):
    """As escalation published them: one message a batch, all in one batch and any cut between agree."""
    alone, together, cut = a_case(intake), a_case(intake), a_case(intake)
    published = data.draw(history(alone), label="published")
    for message in published:
        follow(intake, [message])
    follow(intake, [_for(together, m) for m in published])
    for batch in data.draw(arrival([_for(cut, m) for m in published], reordered=False), label="batches"):
        follow(intake, batch)
    assert state(intake, together) == state(intake, alone) == state(intake, cut)


def _for(case: str, message: events.Message) -> events.Message:
    return replace(message, case_id=case)


@pytest.mark.parametrize("split", [False, True], ids=["one batch", "two batches"])
def test_a_rework_overtaken_by_the_next_resolution_leaves_its_verification_open_to_the_grid_worker(intake, split):
    """The grid worker's verification failed (claimed, sent); escalation published the rework (revision 3)
    and, once fixed again, the resolution (4), which arrive the other way round: the new round is open to
    a verification all the same, and only one verification of it is sent."""
    case = a_case(intake)
    resolved = changed(case, "case.resolved", "verifying", 4, detail={"verifier_level": 1, "resolved_by": "li"})
    reworked = changed(case, "case.reworked", "rework", 3, detail={"reworks": 1})
    for batch in ([[resolved], [reworked]] if split else [[resolved, reworked]]):
        follow(intake, batch)
    worker = Identity("grid_worker", "w-check", "G1")
    assert intake.run(handlers.verify_case, handlers.Verify(case, True, "", worker)).passed
    with pytest.raises(AlreadyVerified):
        intake.run(handlers.verify_case, handlers.Verify(case, True, "", worker))


def test_a_verification_sent_stands_against_an_older_event_that_arrives_after_it(intake):
    """The fix awaits verification (revision 2); staff moved the case within its station (3: a new claim,
    its verifier may have changed) and its time limit warned (4). The grid worker's phone saw revision 4 and
    sent the verification; the move, overtaken, arrives only now. It is older than the verification, which
    stands: a second one is refused, as it would have been had the move come first."""
    n = next(_reports)
    worker = Identity("grid_worker", f"w{n}", "G1")
    case = intake.run(handlers.submit_report, NewReport("street_light", f"lamp {n}", 102.0 + n * 0.01, 27.9),
                      worker, f"k{n}").report.id
    follow(intake, [changed(case, "case.opened", "open", 1, scope=EAST),
                    changed(case, "case.resolved", "verifying", 2, detail={"verifier_level": 1, "resolved_by": "li"}),
                    changed(case, "case.warning", "verifying", 4)])
    intake.run(handlers.verify_case, handlers.Verify(case, True, "", worker))
    follow(intake, [events.CaseTransferred(case_id=case, owners=EAST, level=Level.GRID, reason="r", actor="cmd",
                                           revision=3)])
    with pytest.raises(AlreadyVerified):
        intake.run(handlers.verify_case, handlers.Verify(case, True, "", worker))


def test_a_report_followed_before_the_columns_keys_were_kept_takes_no_older_event(intake):
    """A report whose columns' keys were not kept yet (followed before the upgrade) stands wholly at its
    newest revision: an older event changes nothing, a newer one applies as always."""
    case = a_case(intake)
    with intake.engine.begin() as db:
        db.execute(reports.update().where(reports.c.id == case).values(followed_revisions=None))
    before = state(intake, case)
    follow(intake, [changed(case, "case.opened", "open", 1, scope=WEST)])
    assert state(intake, case) == before
    follow(intake, [changed(case, "case.reworked", "rework", 3, detail={"reworks": 1})])
    after = state(intake, case)
    assert (after["status"], after["case_revision"], after["verification_sent_at"]) == ("rework", 3, None)
    assert after["grid_id"] == "G1"
