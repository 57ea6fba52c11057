"""On PostgreSQL the live feed of an API process hears the steps other processes commit (the consumers,
the scheduler) through a notification, not at its next poll: with the poll set to a minute, a case opened
by another process's service reaches the tailer within seconds. The listener runs only while a board is
connected and gives its connection back when the last one leaves."""
from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa

from harness.servers import create_database, drop_database
from services.escalation import bootstrap, handlers, live
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.support.system import required_server

pytestmark = pytest.mark.postgres

OWNERS = events.Owners(grid=events.AreaRef("G1", "G1"), station=events.AreaRef("S1", "S1"),
                       subcenter=events.AreaRef("C1", "C1"), hq=events.AreaRef("HQ", "HQ"))


@pytest.fixture
def database():
    admin, name = required_server("GRIDCASE_TEST_POSTGRES_URL"), f"gridcase_notified_{uuid.uuid4().hex[:10]}"
    url = create_database(admin, name)
    yield admin, name, url
    drop_database(admin, name)


def build(url: str):
    return bootstrap.build(Settings(database_urls={"escalation": url}, secret="x" * 32), FakeClock(), web=False)


def open_case(service, case_id: str) -> None:
    service.run(handlers.open_cases, [events.CaseDispatched(
        case_id=case_id, number=case_id, category="street_light", severity="normal", reported_at=service.clock.now(),
        areas_version=1, start_level=Level.GRID, owners=OWNERS)])


def listeners(admin: str, name: str) -> int:
    engine = sa.create_engine(admin.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as db:
            return db.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND query LIKE "
                                      "'LISTEN %'"), {"d": name}).scalar_one()
    finally:
        engine.dispose()


def test_a_step_committed_by_another_process_reaches_the_feed_at_once_not_at_its_poll(database):
    admin, name, url = database
    api = build(url)
    # another process: the same database under another URL, so this process's commit wake does not reach it
    worker = build(url + ("&" if "?" in url else "?") + "application_name=gridcase-worker")
    feed = live.tailer(api, lambda step, case, *_: {"id": case.id})
    feed.poll = 60.0
    try:
        with feed.subscribed():
            feed.wait(0, 30, polls=2)  # the first read, and the one when the listener started listening
            assert feed.polls >= 2 and listeners(admin, name) == 1
            before = feed.newest
            committed = time.monotonic()
            open_case(worker, "notified-1")
            feed.wait(before, 20)
            took = time.monotonic() - committed
            assert feed.newest > before, "the step was not read: no notification reached the feed"
            assert [e for e in feed.after(before) if '"notified-1"' in e.text], "the case's step is not in the feed"
            assert took < 20
        deadline = time.monotonic() + 10
        while listeners(admin, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert listeners(admin, name) == 0, "the listener held its connection after the last board left"
    finally:
        api.engine.dispose()
        worker.engine.dispose()
