"""A tiny service for messaging tests: an outbox to fill and a consumer whose effect is a table row."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from shared import bus, outbox
from shared.clock import ScaledClock
from shared.consumer import Consumer, ConsumerWorker
from shared.db import make_engine
from shared.messages import events, make_message
from shared.migrations import upgrade
from shared.uow import Store, UnitOfWork

metadata = sa.MetaData()
seen = sa.Table("seen", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("case_id", sa.String(36), nullable=False))
SUBSCRIPTION = bus.SUBSCRIPTIONS["dispatch.locate"]  # takes case.reported


def messaging_engine(url: str) -> sa.Engine:
    engine = make_engine(url)
    upgrade(engine, "intake")  # any service's schema carries the outbox, inbox and dead letters
    metadata.create_all(engine)
    return engine


def fill_outbox(engine: sa.Engine, n: int, start: int = 0) -> list[str]:
    ids = []
    with engine.begin() as db:
        for i in range(start, start + n):
            case_id = f"case-{i:06d}"
            ids.append(case_id)
            outbox.add(db, [make_message(events.CaseReported(
                case_id=case_id, number=str(i), category="other", severity="normal", description="x",
                location=events.Location(1.0, 2.0), reporter="t", reported_at=datetime(2026, 1, 1, tzinfo=UTC)),
                occurred_at=datetime.now(UTC), producer="test")])
    return ids


def record(message, uow) -> None:
    with uow:
        uow.connection.execute(seen.insert().values(case_id=message.case_id))
        uow.commit()


def unit_of_work(engine) -> UnitOfWork:
    return UnitOfWork(engine, Store, producer="test", clock=ScaledClock())


def consumer_worker(engine, url: str, handler=record, **options) -> ConsumerWorker:
    return ConsumerWorker(SUBSCRIPTION, Consumer(SUBSCRIPTION.consumer, handler).bind(handler), unit_of_work(engine),
                          url, **options)


def start_consumer(engine, url: str, **options) -> tuple[ConsumerWorker, threading.Thread]:
    worker = consumer_worker(engine, url, **options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.ready.wait(10), "consumer did not start"
    return worker, thread


def seen_counts(engine) -> tuple[int, int]:
    """(rows, distinct case ids) the consumer produced."""
    with engine.connect() as db:
        return db.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(seen.c.case_id)))).one()


def unsent(engine) -> int:
    with engine.connect() as db:
        return outbox.pending_count(db)

