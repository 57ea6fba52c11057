"""The transactional outbox: a message is written in the same transaction as the state it reports.

A unit of work writes its events here when it commits (``add``); the relay (``shared.relay``)
publishes unsent rows and marks them sent after the broker's confirm. Rows long sent are pruned.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from shared import pgnotify
from shared.db import UTCDateTime, messaging_metadata
from shared.messages import Envelope

outbox = sa.Table(
    "outbox", messaging_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    # The relay reads only unsent rows: its cost follows what is waiting, not what was ever sent.
    sa.Index("ix_outbox_unsent", "id", postgresql_where=sa.text("sent_at IS NULL"),
             sqlite_where=sa.text("sent_at IS NULL")),
)


#: The PostgreSQL notification channel a relay listens on (per database): a commit that wrote outbox rows
#: in a process without the relay notifies it (``wake``), delivered when the transaction commits.
CHANNEL = "gridcase_outbox"


def wake(connection: sa.Connection) -> None:
    """Notify the relays listening on this PostgreSQL database (``CHANNEL``) when the transaction commits."""
    pgnotify.notify(connection, CHANNEL)


def add(connection: sa.Connection, envelopes: list[Envelope]) -> None:
    """Queue envelopes for publishing; they commit (or roll back) with the caller's transaction.
    PostgreSQL: one statement of one shape and one JSON parameter whatever their number (``_ADD``)."""
    if envelopes and connection.dialect.name == "postgresql":
        now = datetime.now(UTC).isoformat()
        connection.execute(_ADD, {"rows": json.dumps(
            [{"message_id": e.id, "type": e.type, "body": e.to_json(), "created_at": now} for e in envelopes],
            ensure_ascii=False)})
    elif envelopes:
        connection.execute(outbox.insert(), [row(e) for e in envelopes])


#: ``add`` on PostgreSQL: the rows as one JSON array of objects, where executemany would build and convert
#: a parameter set per row.
_ADD = sa.text("""
    INSERT INTO outbox (message_id, type, body, created_at)
    SELECT message_id, type, body, created_at
    FROM json_to_recordset(CAST(:rows AS json)) AS r(message_id text, type text, body text, created_at timestamptz)
""")


def row(envelope: Envelope) -> dict:
    """The outbox row of an envelope (for stores that write it in their own statement)."""
    return {"message_id": envelope.id, "type": envelope.type, "body": envelope.to_json(),
            "created_at": datetime.now(UTC)}


def unsent(connection: sa.Connection, limit: int, *, lock: bool) -> list:
    """The oldest unsent rows; ``lock`` (PostgreSQL) claims them so relays in several processes share."""
    query = (sa.select(outbox.c.id, outbox.c.message_id, outbox.c.type, outbox.c.body)
             .where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(limit))
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return connection.execute(query).all()


def mark_sent(connection: sa.Connection, ids: list[int]) -> None:
    """Mark the rows ``ids`` sent now. PostgreSQL: one statement of one shape whatever the number of ids
    (``_MARK_SENT``, the ids as one array literal), so SQLAlchemy and psycopg build and convert it once and
    the server prepares it; SQLite: an ``IN`` list."""
    if connection.dialect.name == "postgresql":
        connection.execute(_MARK_SENT, {"ids": "{" + ",".join(str(int(i)) for i in ids) + "}",
                                        "now": datetime.now(UTC)})
    else:
        connection.execute(outbox.update().where(outbox.c.id.in_(ids)).values(sent_at=datetime.now(UTC)))


_MARK_SENT = (outbox.update()
              .where(outbox.c.id == sa.any_(sa.cast(sa.bindparam("ids", type_=sa.Text),
                                                    postgresql.ARRAY(sa.BigInteger))))
              .values(sent_at=sa.bindparam("now", type_=UTCDateTime)))


def resend_since(connection: sa.Connection, since: datetime) -> None:
    """Mark rows sent after ``since`` unsent again (the embedded bus forgets on a crash)."""
    connection.execute(outbox.update().where(outbox.c.sent_at >= since).values(sent_at=None))


def prune(connection: sa.Connection, sent_before: datetime) -> None:
    connection.execute(outbox.delete().where(outbox.c.sent_at < sent_before))


def pending_count(connection: sa.Connection) -> int:
    return connection.execute(sa.select(sa.func.count()).select_from(outbox)
                              .where(outbox.c.sent_at.is_(None))).scalar_one()
