"""The transactional outbox: a message is written in the same transaction as the state it reports."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from shared.db import UTCDateTime
from shared.messages import Envelope

metadata = sa.MetaData()

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
)

inbox = sa.Table(
    "inbox", metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(36), primary_key=True),
    sa.Column("processed_at", UTCDateTime, nullable=False),
)

dead_letters = sa.Table(
    "dead_letters", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("consumer", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(64)),
    sa.Column("routing_key", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("failed_at", UTCDateTime, nullable=False),
)


_wakeups: dict[str, threading.Event] = {}


def wakeup(engine: sa.Engine) -> threading.Event:
    """Set after a commit that wrote outbox rows, so a relay in the same process publishes at once
    instead of at its next poll (a relay in another process polls)."""
    return _wakeups.setdefault(str(engine.url), threading.Event())


def add(connection: sa.Connection, *envelopes: Envelope) -> None:
    """Queue envelopes for publishing; they commit (or roll back) with the caller's transaction."""
    if envelopes:
        now = datetime.now(UTC)
        connection.execute(outbox.insert(), [{"message_id": e.id, "type": e.type, "body": e.to_json(),
                                              "created_at": now} for e in envelopes])


def pending_count(connection: sa.Connection) -> int:
    return connection.execute(sa.select(sa.func.count()).select_from(outbox)
                              .where(outbox.c.sent_at.is_(None))).scalar_one()
