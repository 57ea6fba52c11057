"""The deadline scheduler on SQLite and PostgreSQL, with a fake clock."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services.escalation import handlers, store
from shared.clock import FakeClock
from shared.consumer import Delivery
from shared.db import make_engine
from shared.messages import make_message
from shared.migrations import upgrade
from shared.policy import load_policy

AREAS = {"grid": {"id": "G1", "name": "g"}, "station": {"id": "S1", "name": "s"},
         "subcenter": {"id": "C1", "name": "c"}, "hq": {"id": "HQ", "name": "h"}}


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/escalation.db"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine, "escalation")
    yield engine
    engine.dispose()


def open_cases(engine, clock, n, category="street_light"):
    policy = load_policy()
    with engine.begin() as db:
        for i in range(n):
            payload = {"case_id": f"c{i:05d}", "number": str(i), "category": category, "severity": "normal",
                       "reported_at": "2026-01-05T09:00:00Z", "areas_version": 1, "start_level": "grid",
                       **AREAS, "triage": False, "candidates": []}
            envelope = make_message("case.dispatched", payload, occurred_at=clock.now(), producer="test")
            handlers.open_cases(db, [Delivery(envelope, payload)], policy=policy, clock=clock)


def levels(engine) -> dict[int, int]:
    with engine.connect() as db:
        return dict(db.execute(sa.select(store.cases.c.level, sa.func.count()).group_by(store.cases.c.level)).all())


def test_cases_escalate_at_their_deadline_never_before_and_one_level_at_a_time(engine):
    clock = FakeClock()
    open_cases(engine, clock, 20)
    clock.advance(timedelta(hours=4) - timedelta(seconds=1))
    assert handlers.escalate_due(engine, clock) == 0
    clock.advance(timedelta(seconds=1))
    assert handlers.escalate_due(engine, clock) == 20
    assert handlers.escalate_due(engine, clock) == 0, "a tick finds nothing left to do"
    assert levels(engine) == {2: 20}
    clock.advance(timedelta(hours=8))
    assert handlers.escalate_due(engine, clock, limit=7) == 7
    assert levels(engine) == {2: 13, 3: 7}
    with engine.connect() as db:
        published = db.execute(sa.text("SELECT count(*) FROM outbox WHERE type = 'case.escalated'")).scalar()
    assert published == 27


def test_a_case_at_headquarters_past_its_deadline_is_marked_overdue_once(engine):
    clock = FakeClock()
    open_cases(engine, clock, 1)
    for hours in (4, 8, 24, 48, 1000):
        clock.advance(timedelta(hours=hours))
        handlers.escalate_due(engine, clock)
    with engine.connect() as db:
        row = store.get(db, "c00000")
        actions = [s.action for s in store.steps(db, "c00000")]
    assert row.level == 4 and row.overdue and row.deadline_at is None
    assert actions == ["opened", "escalated", "escalated", "escalated", "overdue"]


@pytest.mark.postgres
def test_two_schedulers_on_postgres_never_escalate_a_case_twice_at_one_level(postgres_url):
    """(The embedded mode runs one scheduler on SQLite; several schedulers are a PostgreSQL matter.)"""
    engine = make_engine(postgres_url)
    upgrade(engine, "escalation")
    clock = FakeClock()
    open_cases(engine, clock, 400)
    clock.advance(timedelta(hours=4))
    counts = []
    threads = [threading.Thread(target=lambda: counts.append(handlers.escalate_due(engine, clock, limit=50)
                                                             + handlers.escalate_due(engine, clock, limit=500)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 400
    with engine.connect() as db:
        per_level = db.execute(sa.text("SELECT count(*), count(DISTINCT case_id) FROM escalations")).one()
    assert tuple(per_level) == (400, 400)
    assert levels(engine) == {2: 400}
    engine.dispose()
