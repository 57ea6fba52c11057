"""Escalation's store for acceptance and finding cases, on SQLite and PostgreSQL alike: words found in the
number, description, reporter and place (any case; ``%`` and ``_`` are plain characters), a case by its
number within the caller's area, named handlers (``mine``, ``none``) and the people of a unit, and the
statistics counting only accepted cases."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from harness.servers import create_database, drop_database
from services.escalation import bootstrap, handlers
from services.escalation.store import NOBODY
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.owners import AreaRef, Owners
from shared.vocabulary import Level

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
OWNERS = Owners(grid=AreaRef("G1", "桥东网格"), station=AreaRef("S1", "Riverside station"),
                subcenter=AreaRef("C1", "分中心 1"), hq=AreaRef("HQ", "指挥部"))
ELSEWHERE = Owners(grid=AreaRef("G9", "网格 9"), station=AreaRef("S9", "工作站 9"), subcenter=AreaRef("C1", "分中心 1"),
                   hq=AreaRef("HQ", "指挥部"))
WORKER = Identity("grid_worker", "wang", "G1")
ZHOU = Identity("station", "zhou", "S1")
LI = Identity("station", "li", "S1")
FAR = Identity("station", "far", "S9")
COMMAND = Identity("command", "chen")


@pytest.fixture(params=["sqlite", "postgres"])
def escalation(request, tmp_path):
    from tests.support.system import required_server

    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/escalation.db"
    else:
        admin, database = required_server("GRIDCASE_TEST_POSTGRES_URL"), f"gridcase_find_{uuid.uuid4().hex[:10]}"
        url = create_database(admin, database)
    service = bootstrap.build(Settings(database_urls={"escalation": url}, secret="x" * 40), FakeClock(NOW), web=False)
    service.run(handlers.keep_areas, events.AreasPublished(version=1, areas=(
        events.PublishedArea("HQ", "指挥部", "hq"), events.PublishedArea("C1", "分中心 1", "subcenter", "HQ"),
        events.PublishedArea("S1", "Riverside station", "station", "C1"),
        events.PublishedArea("G1", "桥东网格", "grid", "S1"))))
    cases = [("a", "20260302-000001", "Lamp OUT at 100% dark", "wang", OWNERS, "grid_worker"),
             ("b", "20260302-000002", "井盖缺失 by the school_gate", "open311:civic", OWNERS, "open311"),
             ("c", "20260302-000003", "lamp out elsewhere", "ma", ELSEWHERE, "grid_worker"),
             ("d", "20260302-000004", "bench broken", "open311:civic", OWNERS, "open311")]
    service.run(handlers.open_cases, [events.CaseDispatched(
        case_id=i, number=n, category="street_light", severity="normal", reported_at=NOW, areas_version=1,
        start_level=Level.GRID, owners=o, description=d, reporter=r, channel=ch) for i, n, d, r, o, ch in cases])
    yield service
    service.engine.dispose()
    if database:
        drop_database(admin, database)


def found(service, who: Identity, **filters) -> list[str]:
    with service.uow() as uow:
        items, total = uow.store.page(who, now=NOW, page=1, size=50, **filters)
    assert total == len(items)
    return sorted(case.id for case, *_ in items)


def act(service, case_id: str, who: Identity, action: str, **arguments):
    with service.uow() as uow:
        uow.store.get(case_id)
        tag = handlers.etag(uow.store.revision(case_id))
    return service.run(handlers.take_action, handlers.TakeAction(case_id, action, arguments, who, tag))[0]


def test_words_are_found_in_any_case_in_the_number_description_reporter_and_place(escalation):
    assert found(escalation, ZHOU, q="lamp") == ["a"], "the other lamp is outside the station"
    assert found(escalation, COMMAND, q="LAMP out") == ["a", "c"]
    assert found(escalation, COMMAND, q="000002") == ["b"]
    assert found(escalation, COMMAND, q="civic bench") == ["d"]
    assert found(escalation, COMMAND, q="riverside 桥东") == ["a", "b", "d"], "the owners' names"
    assert found(escalation, COMMAND, q="100%") == ["a"] and found(escalation, COMMAND, q="l_mp") == []
    assert found(escalation, COMMAND, q="school_gate") == ["b"]


def test_a_case_is_found_by_its_number_in_the_callers_area_only(escalation):
    with escalation.uow() as uow:
        assert uow.store.by_number("20260302-000001", ZHOU).id == "a"
        assert uow.store.by_number("20260302-000001", FAR) is None
        assert uow.store.by_number("20260302-999999", COMMAND) is None


def test_named_handlers_mine_and_nobody(escalation):
    escalation.run(handlers.remember_person, LI)
    act(escalation, "a", WORKER, "escalate", reason="needs the station")
    assert found(escalation, ZHOU, assignee=NOBODY) == ["a"], "the station holds a; b and d wait for acceptance"
    act(escalation, "a", ZHOU, "assign", assignee="li")
    assert found(escalation, LI, assignee="li") == ["a"] and found(escalation, ZHOU, assignee=NOBODY) == []
    with escalation.uow() as uow:
        assert uow.store.people_of("S1") == ["li"] and uow.store.units_of("li") == ["S1"]
    act(escalation, "a", ZHOU, "escalate", reason="needs the sub-center")
    assert found(escalation, LI, assignee="li") == [], "the sub-center holds it now: li no longer handles it"


def test_only_accepted_cases_are_counted_in_the_statistics(escalation):
    act(escalation, "b", ZHOU, "refuse", reason="duplicate", note="the same cover as 20260301-000009")
    act(escalation, "d", ZHOU, "accept")

    def opened() -> int:
        answer = escalation.run(handlers.closure_stats, handlers.ClosureStats(
            COMMAND, "category", "month", date(2026, 3, 1), date(2026, 4, 1)))
        return sum(row["opened"] for row in answer["rows"])

    assert opened() == 3, "a, c and d; b was refused"
    assert escalation.run(handlers.refresh_facts, 1000) == 0, "a refused report is no case missing its row"
