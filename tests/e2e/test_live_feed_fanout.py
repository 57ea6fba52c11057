"""The live feed scales with processes, not screens: 200 boards on one escalation process (gunicorn, gevent)
cost the database what one board does — one tailer's polls, counted by PostgreSQL itself
(``pg_stat_database``: every query of gridcase runs in a transaction) — and every board in scope still
gets each new case, within the connection budget of the process."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from harness.boards import Boards
from harness.processes import GRIDCASE, Processes, wait_for
from services.escalation import bootstrap, handlers
from shared.auth import issue_token
from shared.config import Settings
from shared.messages import events
from shared.owners import AreaRef, Owners
from shared.vocabulary import Level

pytestmark = pytest.mark.postgres

SECRET = "fan-out-" + "k" * 40
OWNERS = Owners(hq=AreaRef("HQ", "City"), subcenter=AreaRef("SC1", "Sub-center"), station=AreaRef("S1", "Station"),
                grid=AreaRef("G1", "Grid"))
WINDOW = 6.0  # seconds over which the database's transactions are counted
#: PostgreSQL counts a backend's transactions when it reports them: at once when busy (at most once a
#: second), and at the latest 10 s after it went idle (PGSTAT_IDLE_INTERVAL, PostgreSQL 15 and later). The
#: boards' opening reads (each new token's verification) are reported before a window that starts this late.
SETTLE = 11.0
BOARDS = 200


def transactions(admin_url: str, database: str) -> int:
    """Transactions committed and rolled back in ``database`` so far (read from another database)."""
    engine = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as db:
            return db.execute(sa.text("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                      "WHERE datname = :d"), {"d": database}).scalar_one()
    finally:
        engine.dispose()


def connections(admin_url: str, database: str) -> int:
    engine = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as db:
            return db.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                              {"d": database}).scalar_one()
    finally:
        engine.dispose()


def rate(admin_url: str, database: str) -> float:
    """The database's transactions per second over ``WINDOW``, starting ``SETTLE`` seconds from now (so
    what was done before the call has been reported)."""
    time.sleep(SETTLE)
    before = transactions(admin_url, database)
    time.sleep(WINDOW)
    return (transactions(admin_url, database) - before) / WINDOW


def open_case(service, case_id: str) -> None:
    service.run(handlers.open_cases, [events.CaseDispatched(
        case_id=case_id, number=case_id[:8], category="street_light", severity="normal",
        reported_at=datetime.now(UTC), areas_version=1, start_level=Level.GRID, owners=OWNERS)])


def test_two_hundred_boards_cost_the_database_what_one_does(tmp_path, postgres_admin_url, postgres_url):
    database = sa.engine.make_url(postgres_url).database
    service = bootstrap.build(Settings(data_dir=tmp_path, secret=SECRET,
                                       database_urls={"escalation": postgres_url}), web=False)
    processes = Processes(tmp_path)
    env = {"GRIDCASE_ESCALATION_DATABASE_URL": postgres_url, "GRIDCASE_SECRET": SECRET,
           "GRIDCASE_DB_POOL_SIZE": "2", "GRIDCASE_DB_MAX_OVERFLOW": "2"}
    base = processes.serve("serve-escalation", [*GRIDCASE, "serve", "escalation", "--workers", "1", "--data-dir",
                                                str(tmp_path)], env)
    in_scope = issue_token(SECRET, "station", area="S1", user="s1")
    elsewhere = issue_token(SECRET, "station", area="S2", user="s2")
    try:
        processes.wait_ready("serve-escalation", f"{base}/escalation/readyz", timeout=60)
        assert "gevent" in processes.log("serve-escalation").lower()
        with Boards(base, [in_scope], 1) as one:
            assert one.boards[0].received[0][0] == "hello"
            one_board = rate(postgres_admin_url, database)
        boards = Boards(base, [in_scope, in_scope, in_scope, elsewhere], BOARDS).open()
        try:
            assert all(b.received for b in boards.boards) and not boards.errors, boards.errors[:3]
            many_boards = rate(postgres_admin_url, database)
            held = connections(postgres_admin_url, database)
            open_case(service, "fan-out-case")

            def opened(name, data):
                return name == "case" and json.loads(data)["case"]["id"] == "fan-out-case"
            wait_for(lambda: boards.seen(opened) == BOARDS * 3 // 4, timeout=30, message="every board in scope",
                     watch=processes)
            time.sleep(1)  # the boards of another station get nothing
            assert boards.seen(opened) == BOARDS * 3 // 4 and not boards.errors, boards.errors[:3]
        finally:
            boards.close()
    finally:
        processes.stop_all()
        service.engine.dispose()
    # One tailer reads the timeline whatever the number of boards (every 2 s, or when a step is notified,
    # at most 10 times a second); before, each board polled.
    assert one_board <= 10 and many_boards <= 10, (one_board, many_boards)
    # a cost per board would be 200 queries or more over the window (about 27 a second); what varies
    # between the two windows is a few reads of the process's own (revocations, a late listener)
    assert many_boards <= one_board + 3, (one_board, many_boards)
    assert held <= 4 + 1 + 1, (f"{held} connections: the process's budget is 2 + 2 and its listener's one "
                               "(and this test's own service)")
