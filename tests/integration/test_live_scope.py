"""A step that moves a case out of an area scope is kept with the scope it left (``timeline.left_*``), so
the live feed tells the boards of that scope the case is gone (``removed``), from memory or from the
database, on SQLite and PostgreSQL alike."""
from __future__ import annotations

import uuid

import pytest

from harness.servers import create_database, drop_database
from services.escalation import bootstrap, handlers, live
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.support.system import required_server

AREAS = (("HQ", "hq", None), ("C1", "subcenter", "HQ"), ("S1", "station", "C1"), ("S2", "station", "C1"),
         ("G1", "grid", "S1"), ("G2", "grid", "S2"))
OWNERS = events.Owners(grid=events.AreaRef("G1", "G1"), station=events.AreaRef("S1", "S1"),
                       subcenter=events.AreaRef("C1", "C1"), hq=events.AreaRef("HQ", "HQ"))
OLD, NEW, OTHER = (Identity("station", f"desk-{s}", s) for s in ("S1", "S2", "S9"))
COMMAND = Identity("command", "chen")


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
    service.run(handlers.open_cases, [events.CaseDispatched(
        case_id="c1", number="n1", category="street_light", severity="normal", reported_at=service.clock.now(),
        areas_version=1, start_level=Level.GRID, owners=OWNERS)])
    yield service
    service.engine.dispose()
    if database:
        drop_database(admin, database)


def transfer(service, to: str) -> None:
    with service.uow() as uow:
        uow.store.get("c1")
        tag = handlers.etag(uow.store.revision("c1"))
    service.run(handlers.take_action, handlers.TakeAction("c1", "transfer", {"to": to, "reason": "their street"},
                                                          COMMAND, tag))


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
    assert [r[5] is not None for r in rows] == [False, True]
    assert rows[1][5].station.id == "S1" and rows[1][5].grid.id == "G1"
