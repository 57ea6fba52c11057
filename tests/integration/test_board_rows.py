"""The board's rows (``GET /escalation/v1/cases/rows``) have their times computed by the database, on SQLite
and PostgreSQL alike: each row says what the case itself says — ``time_left`` the seconds from the answer's
``now`` to the case's deadline (to the millisecond), ``overdue`` from the deadline's very instant on,
``reported_at`` and ``next_warning`` as every other answer writes a time (ISO 8601 UTC, milliseconds cut,
not rounded) — and the named handler only while the unit holding the case is the handler's."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.escalation import bootstrap, handlers
from services.escalation.board_api import COLUMNS, OPEN, _rows
from services.escalation.store import cases
from shared.auth import Identity
from shared.clock import FakeClock, isoformat
from shared.config import Settings
from shared.messages import events
from shared.owners import AreaRef, Owners
from shared.vocabulary import Level
from tests.support.system import database_url

#: microseconds past the millisecond: a time written to the millisecond is cut (…00.713Z), never rounded up
NOW = datetime(2026, 3, 2, 2, 0, 0, 713999, tzinfo=UTC)
HERE = Owners(grid=AreaRef("G1", "桥东网格"), station=AreaRef("S1", "Riverside station"),
              subcenter=AreaRef("C1", "分中心 1"), hq=AreaRef("HQ", "指挥部"))
THERE = Owners(grid=AreaRef("G2", "网格 2"), station=AreaRef("S1", "Riverside station"),
               subcenter=AreaRef("C1", "分中心 1"), hq=AreaRef("HQ", "指挥部"))
WATCHER = Identity("subcenter", "he", "C1")


@pytest.fixture(params=["sqlite", "postgres"])
def escalation(request, tmp_path):
    with database_url(request.param, tmp_path, "rows") as url:
        yield from _escalation(url)


def _escalation(url: str):
    clock = FakeClock(NOW)
    service = bootstrap.build(Settings(database_urls={"escalation": url}, secret="x" * 40), clock, web=False)
    opened = [("a", "20260302-000001", HERE), ("b", "20260302-000002", THERE), ("c", "20260302-000003", HERE)]
    for n, (case_id, number, owners) in enumerate(opened):
        service.run(handlers.open_cases, [events.CaseDispatched(
            case_id=case_id, number=number, category="street_light", severity="normal",
            reported_at=clock.now() - timedelta(seconds=n), areas_version=1, start_level=Level.GRID, owners=owners,
            description=f"case {case_id}", reporter="wang", channel="grid_worker")])
        clock.advance(timedelta(minutes=37, microseconds=999))
    yield service, clock
    service.engine.dispose()


def board(service, now: datetime) -> list[dict]:
    with service.uow() as uow:
        found, total = uow.store.board_rows(WATCHER, OPEN, 100, now)
    rows, names = _rows(found, now)
    assert total == len(rows) and names["G1"] == "桥东网格" and names["C1"] == "分中心 1"
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def expected(service, case_id: str, now: datetime) -> dict:
    with service.uow() as uow:
        case = uow.store.get(case_id)
        report = uow.store.detail(case_id)[0]
    return {"number": case.number, "owner": case.owner.area_id, "grid": case.owners.grid.id,
            "time_left": (case.deadline - now).total_seconds(), "overdue": now >= case.deadline,
            "reported_at": isoformat(report.reported_at)}


def test_each_row_says_what_its_case_says_at_the_deadline_s_very_instant(escalation):
    service, _ = escalation
    with service.uow() as uow:
        first = uow.store.get("a").deadline
    for now in (NOW, first - timedelta(microseconds=1), first, first + timedelta(hours=30)):
        rows = board(service, now)
        assert [r["number"] for r in rows] == ["20260302-000001", "20260302-000002", "20260302-000003"]
        for row, case_id in zip(rows, "abc", strict=True):
            want = expected(service, case_id, now)
            assert abs(row.pop("time_left") - want.pop("time_left")) <= 0.001, (now, row)
            assert {k: row[k] for k in want} == want, now
            assert row["reported_at"].endswith(".713Z") or case_id != "a"


def test_the_handler_is_named_only_while_the_case_is_with_the_handler_s_unit_and_the_next_warning_with_a_deadline(
        escalation):
    service, clock = escalation
    warning = datetime(2026, 3, 2, 4, 30, 59, 999999, tzinfo=UTC)
    with service.uow() as uow:
        uow.store.db.execute(cases.update().where(cases.c.id.in_(["a", "b"]))
                             .values(assignee="li", assignee_unit="G1", next_warning_at=warning))
        uow.store.db.execute(cases.update().where(cases.c.id == "c").values(deadline_at=None, next_warning_at=warning))
        uow.commit()
    rows = {r["number"][-1]: r for r in board(service, clock.now())}
    assert [rows[n]["assignee"] for n in "123"] == ["li", None, None]
    assert [rows[n]["next_warning"] for n in "123"] == ["2026-03-02T04:30:59.999Z"] * 2 + [None]
    assert rows["3"]["time_left"] is None and rows["3"]["overdue"] is False
