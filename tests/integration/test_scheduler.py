"""The deadline scheduler on SQLite and PostgreSQL, with a fake clock."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from harness.processes import wait_for
from services.escalation import bootstrap, handlers, store
from services.escalation.scheduler import Scheduler
from shared.clock import FakeClock, ScaledClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.support.cases import CALENDAR_HOURS_POLICY

OWNERS = events.Owners(grid=events.AreaRef("G1", "g"), station=events.AreaRef("S1", "s"),
                       subcenter=events.AreaRef("C1", "c"), hq=events.AreaRef("HQ", "h"))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/escalation.db"
    return request.getfixturevalue("postgres_url")


def escalation(url, clock):
    return bootstrap.build(Settings(
        database_urls={"escalation": url}, secret="x", policy_file=str(CALENDAR_HOURS_POLICY)), clock, web=False)


def open_cases(service, n, category="street_light"):
    service.run(handlers.open_cases, [
        events.CaseDispatched(case_id=f"c{i:05d}", number=str(i), category=category, severity="normal",
                              reported_at=service.clock.now(), areas_version=1, start_level=Level.GRID,
                              owners=OWNERS) for i in range(n)])


def levels(service) -> dict[int, int]:
    with service.engine.connect() as db:
        return dict(db.execute(sa.select(store.cases.c.level, sa.func.count()).group_by(store.cases.c.level)).all())


def escalate_due(service, limit=500) -> int:
    return service.run(handlers.escalate_due, limit)


def test_cases_escalate_at_their_deadline_never_before_and_one_level_at_a_time(database_url):
    clock = FakeClock()
    service = escalation(database_url, clock)
    open_cases(service, 20)
    clock.advance(timedelta(hours=4) - timedelta(seconds=1))
    assert escalate_due(service) == 0
    clock.advance(timedelta(seconds=1))
    assert escalate_due(service) == 20
    assert escalate_due(service) == 0, "a tick finds nothing left to do"
    assert levels(service) == {2: 20}
    clock.advance(timedelta(hours=8))
    assert escalate_due(service, limit=7) == 7
    assert levels(service) == {2: 13, 3: 7}
    with service.engine.connect() as db:
        published = db.execute(sa.text("SELECT count(*) FROM outbox WHERE type = 'case.escalated'")).scalar()
    assert published == 27


def test_a_case_at_headquarters_past_its_deadline_is_marked_overdue_once(database_url):
    clock = FakeClock()
    service = escalation(database_url, clock)
    open_cases(service, 1)
    for hours in (4, 8, 24, 48, 1000):
        clock.advance(timedelta(hours=hours))
        escalate_due(service)
    with service.uow() as uow:
        case = uow.store.get("c00000")
        steps = [s.type for s in uow.store.steps("c00000")]
    assert case.level == 4 and case.overdue and case.deadline is not None, "overdue keeps its deadline"
    assert steps == ["opened", "escalated", "escalated", "escalated", "overdue"]


def test_a_scheduler_back_from_an_outage_climbs_through_every_missed_deadline_on_the_original_schedule(
        database_url):
    clock = FakeClock()
    service = escalation(database_url, clock)
    opened = clock.now()
    open_cases(service, 1)
    clock.advance(timedelta(hours=4 + 8 + 24 + 1))  # down through three levels' worth of time
    assert escalate_due(service) == 1
    with service.uow() as uow:
        case = uow.store.get("c00000")
        steps = uow.store.steps("c00000")
    hour = timedelta(hours=1)
    assert [(s.type, s.level, s.scheduled_at) for s in steps[1:]] == [
        ("escalated", 2, opened + 4 * hour), ("escalated", 3, opened + 12 * hour), ("escalated", 4, opened + 36 * hour)]
    assert all(s.at == clock.now() for s in steps[1:]), "each step says when it actually fired"
    assert case.deadline == opened + 84 * hour, "the outage gave the case no extra time"
    with service.engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM escalations")).scalar() == 3


def test_every_step_is_in_the_audit_chain_and_the_chain_verifies(database_url):
    from shared import audit

    clock = FakeClock()
    service = escalation(database_url, clock)
    open_cases(service, 3)
    clock.advance(timedelta(hours=5))
    escalate_due(service)
    with service.uow() as uow:
        rows = list(uow.store.audit_rows())
    assert [r.action for r in rows] == ["opened"] * 3 + ["escalated"] * 3
    assert audit.verify(rows) is None


@pytest.mark.postgres
def test_two_schedulers_on_postgres_never_escalate_a_case_twice_at_one_level(postgres_url):
    """(The embedded mode runs one scheduler on SQLite; several schedulers are a PostgreSQL matter.)"""
    clock = FakeClock()
    service = escalation(postgres_url, clock)
    open_cases(service, 400)
    clock.advance(timedelta(hours=4))
    counts = []
    threads = [threading.Thread(target=lambda: counts.append(escalate_due(service, 50) + escalate_due(service)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 400
    with service.engine.connect() as db:
        per_level = db.execute(sa.text("SELECT count(*), count(DISTINCT case_id) FROM escalations")).one()
    assert tuple(per_level) == (400, 400)
    assert levels(service) == {2: 400}
    service.engine.dispose()


def test_the_scheduler_fires_each_warning_once_and_the_list_filters_and_sorts_by_them(database_url, tmp_path):
    from shared.auth import Identity

    policy = tmp_path / "policy.toml"
    policy.write_text(CALENDAR_HOURS_POLICY.read_text(encoding="utf-8").replace(
        "[levels]", "[defaults]\nwarnings = [0.5, 0.8]\n\n[defaults.levels]"), encoding="utf-8")
    clock = FakeClock()
    service = bootstrap.build(Settings(database_urls={"escalation": database_url}, secret="x",
                                       policy_file=str(policy)), clock, web=False)
    open_cases(service, 2)
    service.run(handlers.open_cases, [events.CaseDispatched(  # 24 h at level 1: warned at 12 h
        case_id="n1", number="n1", category="neighbour_dispute", severity="normal", reported_at=clock.now(),
        areas_version=1, start_level=Level.GRID, owners=OWNERS)])
    clock.advance(timedelta(hours=2))  # street lights: 50 % of 4 h
    assert escalate_due(service) == 2
    assert escalate_due(service) == 0, "each warning fires once"
    command = Identity(role="command", user="chen")
    with service.uow() as uow:
        warned, total = uow.store.page(command, now=clock.now(), page=1, size=10, warned=0.5)
        not_yet, _ = uow.store.page(command, now=clock.now(), page=1, size=10, warned=-1)
        by_warning, _ = uow.store.page(command, now=clock.now(), page=1, size=10, sort="next_warning")
        steps = uow.store.steps(warned[0][0].id)
    assert total == 2 and {c.category for c, *_ in warned} == {"street_light"}
    assert [c.category for c, *_ in not_yet] == ["neighbour_dispute"]
    assert [c.category for c, *_ in by_warning][0] == "street_light", "the 80 % warning (3.2 h) comes first"
    assert [s.type for s in steps] == ["opened", "warning"]
    assert steps[1].scheduled_at == steps[0].at + timedelta(hours=2)
    service.engine.dispose()


def test_the_scheduler_sleeps_until_the_next_deadline_and_a_commit_wakes_it(database_url):
    """With polling made useless (30 s), cases opened after the scheduler went to sleep still escalate
    at their deadline: the commit wakes it, it reads the earliest ``due_at`` and sleeps until then."""
    clock = ScaledClock(scale=4 * 3600 / 1.5)  # the 4-hour grid limit passes in 1.5 real seconds
    service = escalation(database_url, clock)
    scheduler = Scheduler(service, idle_interval=30)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        time.sleep(4)  # asleep, with nothing due (a backing-off poller would now sleep over two seconds)
        started = time.monotonic()
        open_cases(service, 3)
        wait_for(lambda: levels(service) == {2: 3}, timeout=10, message="escalated at the deadline")
        assert 1.2 < time.monotonic() - started < 2.2
    finally:
        scheduler.stop()
        thread.join(5)
    assert not thread.is_alive(), "stop() ends the wait at once"
