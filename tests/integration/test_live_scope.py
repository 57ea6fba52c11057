"""A step that moves a case out of an area scope is kept with the scope it left (``timeline.left_*``), and
one that ends a department's part with that department (``timeline.left_departments``), so the live feed
tells the boards of that scope or department the case is gone (``removed``), from memory or from the
database, on SQLite and PostgreSQL alike."""
from __future__ import annotations

import uuid

import pytest

from harness.servers import create_database, drop_database
from services.escalation import bootstrap, handlers, live
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.departments import Department
from shared.messages import events
from shared.vocabulary import Level
from tests.support.system import required_server

AREAS = (("HQ", "hq", None), ("C1", "subcenter", "HQ"), ("S1", "station", "C1"), ("S2", "station", "C1"),
         ("G1", "grid", "S1"), ("G2", "grid", "S2"), ("C2", "subcenter", "HQ"), ("S3", "station", "C2"),
         ("G3", "grid", "S3"))
OWNERS = events.Owners(grid=events.AreaRef("G1", "G1"), station=events.AreaRef("S1", "S1"),
                       subcenter=events.AreaRef("C1", "C1"), hq=events.AreaRef("HQ", "HQ"))
OLD, NEW, OTHER = (Identity("station", f"desk-{s}", s) for s in ("S1", "S2", "S9"))
COMMAND = Identity("command", "chen")
WATER, POWER = (Identity("department", f"desk-{d}", department=d) for d in ("water", "power"))
WALL_C1, WALL_C2 = Identity("subcenter", "wall-C1", "C1"), Identity("subcenter", "wall-C2", "C2")


@pytest.fixture(params=["sqlite", "postgres"])
def escalation(request, tmp_path):
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/escalation.db"
    else:
        admin, database = required_server("GRIDCASE_TEST_POSTGRES_URL"), f"gridcase_live_{uuid.uuid4().hex[:10]}"
        url = create_database(admin, database)
    service = bootstrap.build(Settings(database_urls={"escalation": url}, secret="x" * 32), FakeClock(), web=False)
    service.run(handlers.keep_areas, events.AreasPublished(version=1, areas=tuple(
        events.PublishedArea(i, i, level, parent) for i, level, parent in AREAS)))
    service.run(handlers.keep_departments, events.DepartmentsPublished(version=1, departments=tuple(
        Department(d, d, d, "HQ") for d in ("water", "power"))))
    service.run(handlers.open_cases, [events.CaseDispatched(
        case_id="c1", number="n1", category="street_light", severity="normal", reported_at=service.clock.now(),
        areas_version=1, start_level=Level.GRID, owners=OWNERS)])
    yield service
    service.engine.dispose()
    if database:
        drop_database(admin, database)


def act(service, who, action: str, **arguments) -> None:
    with service.uow() as uow:
        uow.store.get("c1")
        tag = handlers.etag(uow.store.revision("c1"))
    service.run(handlers.take_action, handlers.TakeAction("c1", action, arguments, who, tag))


def transfer(service, to: str) -> None:
    act(service, COMMAND, "transfer", to=to, reason="their street")


def sent(service, caller, after=0) -> list[str]:
    """What the feed sends ``caller`` of the rows after ``after``, read as a reconnecting client's catch-up."""
    with service.uow() as uow:
        rows = uow.store.steps_after(caller, after, 100)
    return [text for row in rows if (text := live.for_caller(caller, live.case_event(
        row, service.clock.now(), lambda step, case, *_: {"id": case.id})))]


def test_a_transfer_out_of_a_station_reaches_that_station_as_a_removal_and_the_new_one_as_the_case(escalation):
    transfer(escalation, "G2")

    old, new, other = sent(escalation, OLD), sent(escalation, NEW), sent(escalation, OTHER)

    assert old[-1].startswith("id: ") and "event: removed" in old[-1] and '"case_id":"c1"' in old[-1]
    assert all("event: case" in text for text in old[:-1]), "what the old station saw before, as it was"
    assert "event: case" in new[-1] and '"type":"transferred"' in new[-1]
    assert other == []


def test_a_step_that_keeps_the_scope_is_no_removal(escalation):
    transfer(escalation, "G2")
    with escalation.uow() as uow:
        rows = uow.store.steps_after(None, 0, 100)
    assert [r[5] is not None for r in rows] == [False, True] and [r[6] for r in rows] == [frozenset()] * 2
    assert rows[1][5].station.id == "S1" and rows[1][5].grid.id == "G1"


def test_a_transfer_out_of_a_subcenter_reaches_its_wall_as_a_removal(escalation):
    """The wall (大屏) reads the same feed: a sub-center's wall is told when a case leaves its district."""
    transfer(escalation, "G3")

    assert "event: removed" in sent(escalation, WALL_C1)[-1]
    assert "event: case" in sent(escalation, WALL_C2)[-1] and '"type":"transferred"' in sent(escalation, WALL_C2)[-1]


def board(service, who) -> list[str]:
    """The case ids a board lists (the working states the board asks for)."""
    with service.uow() as uow:
        items, _ = uow.store.page(who, now=service.clock.now(), page=1, size=50,
                                  status=["open", "acknowledged", "dispatched", "verifying", "rework"])
    return [case.id for case, *_ in items]


@pytest.mark.parametrize("outcome, words", [("done", {"note": "valve replaced"}), ("declined", {"reason": "not ours"})])
def test_a_departments_feedback_takes_the_case_off_its_board_and_its_feed_says_so(escalation, outcome, words):
    """The board's ``removed`` event covered area scope only: a department that fed back kept the case on
    its board, and the steps that followed kept arriving on its feed."""
    act(escalation, COMMAND, "assign_department", department="water", role="co", note="check the main")
    act(escalation, COMMAND, "assign_department", department="power", role="co", note="check the cable")
    assert board(escalation, WATER) == ["c1"] and "event: case" in sent(escalation, WATER)[-1]

    act(escalation, WATER, "feedback", outcome=outcome, **words)

    assert "event: removed" in sent(escalation, WATER)[-1] and f'"type":"department_{outcome}"' in \
        sent(escalation, WATER)[-1]
    assert "event: case" in sent(escalation, POWER)[-1], "the other department still holds the case"
    assert board(escalation, WATER) == [] and board(escalation, POWER) == ["c1"]
    with escalation.uow() as uow:
        assert uow.store.get("c1", WATER) is not None, "it still reads the case it took part in"
    transfer(escalation, "G2")
    assert "transferred" not in "".join(sent(escalation, WATER)), "steps after its part are not on its feed"
