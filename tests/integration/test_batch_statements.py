"""A batch of dispatched cases costs escalation the same statements whatever its size, on SQLite and
PostgreSQL: each case's notification rows, audit rows and early-warning work are written with the batch's,
not one round trip per case or per early-warning item (on a loaded machine every round trip costs the
consumer a wait on the database). Counted with SQLAlchemy's ``before_cursor_execute``; the shipped policy
(its street-light cluster rule: 5 reports within 200 m in 24 hours opens an item, the next one joins it)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from harness.servers import create_database, drop_database
from services.escalation import bootstrap, handlers
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.support.system import required_server

OWNERS = events.Owners(grid=events.AreaRef("G1", "g"), station=events.AreaRef("S1", "s"),
                       subcenter=events.AreaRef("C1", "c"), hq=events.AreaRef("HQ", "h"))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """A function making a fresh escalation database URL (dropped afterwards)."""
    made = []

    def make() -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path}/escalation-{len(made)}-{uuid.uuid4().hex[:6]}.db"
        admin = required_server("GRIDCASE_TEST_POSTGRES_URL")
        name = f"gridcase_batch_{uuid.uuid4().hex[:10]}"
        made.append((admin, name))
        return create_database(admin, name)

    yield make
    for admin, name in made:
        drop_database(admin, name)


def statements_to_open(url: str, clusters: int) -> int:
    """Statements escalation runs to open one batch of street-light cases at ``clusters`` places 2 km
    apart: three that join the item five earlier reports opened there, and six at a new place nearby (five
    open an item, the sixth joins it); each place in a grid of its own, below the recurring rule's ten."""
    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=UTC))
    service = bootstrap.build(Settings(database_urls={"escalation": url}, secret="x"), clock, web=False)
    try:
        def reports(tag: str, count: int, lat: float, grid: str = ""):
            return [events.CaseDispatched(
                case_id=f"{tag}-{c}-{n}", number=f"{tag}{c}{n}", category="street_light", severity="normal",
                reported_at=clock.now(), areas_version=1, start_level=Level.GRID,
                owners=events.Owners(grid=events.AreaRef(f"G{c}{grid}", "g"), station=events.AreaRef("S1", "s"),
                                     subcenter=events.AreaRef("C1", "c"), hq=events.AreaRef("HQ", "h")),
                location=events.Location(120.0 + c * 0.02, lat + n * 0.0001), reporter=f"r{n}")
                for c in range(clusters) for n in range(count)]
        service.run(handlers.open_cases, reports("earlier", 5, 31.0))  # an item at each place
        clock.advance(timedelta(minutes=1))
        seen = []
        sa.event.listen(service.engine, "before_cursor_execute", lambda *args, **kwargs: seen.append(args[2]))
        service.run(handlers.open_cases, reports("joining", 3, 31.0) + reports("new", 6, 31.005, "N"))
        with service.uow() as uow:
            items = uow.connection.execute(sa.text("SELECT count(*) FROM warning_items")).scalar_one()
            held = uow.connection.execute(sa.text("SELECT count(*) FROM warning_reports")).scalar_one()
            notified = uow.connection.execute(sa.text("SELECT count(*) FROM notifications")).scalar_one()
        assert (items, held) == (2 * clusters, 14 * clusters)  # every report went into its place's item
        assert notified >= 14 * clusters  # every case (and item) notified someone (the in-app defaults)
        return len(seen)
    finally:
        service.engine.dispose()


def test_opening_a_batch_costs_the_same_statements_for_1_or_5_places(database):
    one, five = statements_to_open(database(), 1), statements_to_open(database(), 5)
    assert five == one, f"9 cases: {one} statements, 45 cases: {five}"
