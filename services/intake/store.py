"""Intake's tables (migrations in ``migrations/``) and the queries on them."""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from shared import outbox
from shared.db import UTCDateTime
from shared.messages import Envelope

metadata = sa.MetaData()

reports = sa.Table(
    "reports", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("idempotency_key", sa.String(128)),
    sa.Column("reporter", sa.String(128), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reported_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("level", sa.Integer),
    sa.Column("owner_area_id", sa.String(64)),
)


def find_by_key(connection: sa.Connection, reporter: str, key: str):
    return connection.execute(sa.select(reports).where(
        reports.c.reporter == reporter, reports.c.idempotency_key == key)).first()


def get(connection: sa.Connection, report_id: str):
    return connection.execute(sa.select(reports).where(reports.c.id == report_id)).first()


class ReportWriter:
    """Writes a report and its outbox message as one atomic step, in as few round trips as possible.

    The report's sequence number is known before the write (the message carries the number people
    read out), so on PostgreSQL both rows go in one autocommit statement — a data-modifying CTE —
    with numbers reserved from the sequence a block at a time; numbers stay unique, and are only
    roughly in time order across processes. On SQLite (embedded, one writer at a time) the next
    number is read inside the write transaction.
    """

    BLOCK = 64

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._reserved: list[int] = []
        self._lock = threading.Lock()
        if self.postgres:
            # Connections that stay in autocommit (no BEGIN/COMMIT round trips: the one statement is atomic).
            self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._statement = _report_and_message()

    def insert(self, values: dict, message_for: Callable[[int], Envelope]) -> int | None:
        """The new report's sequence number, or None if its idempotency key was used already."""
        if self.postgres:
            return self._insert_postgres(values, message_for)
        with self.engine.begin() as db:
            seq = db.execute(sa.select(sa.func.coalesce(sa.func.max(reports.c.seq), 0) + 1)).scalar_one()
            inserted = db.execute(sqlite.insert(reports).values(seq=seq, **values).on_conflict_do_nothing()
                                  .returning(reports.c.seq)).scalar()
            if inserted is not None:
                outbox.add(db, message_for(inserted))
            return inserted

    def _insert_postgres(self, values: dict, message_for) -> int | None:
        seq = self._next_seq()
        message = message_for(seq)
        parameters = {**values, "seq": seq, "message_id": message.id, "type": message.type,
                      "body": message.to_json(), "created_at": datetime.now(UTC)}
        with self._autocommit.connect() as db:
            return seq if db.execute(self._statement, parameters).first() is not None else None

    def _next_seq(self) -> int:
        with self._lock:
            if not self._reserved:
                with self.engine.connect() as db:
                    self._reserved = list(reversed(db.execute(sa.text(
                        "SELECT nextval(pg_get_serial_sequence('reports', 'seq')) FROM generate_series(1, :n)"),
                        {"n": self.BLOCK}).scalars().all()))
                    db.commit()
            return self._reserved.pop()


def _report_and_message() -> sa.Insert:
    """``WITH report AS (INSERT INTO reports … ON CONFLICT DO NOTHING RETURNING seq)
    INSERT INTO outbox … SELECT … FROM report``: no outbox row when the report was not inserted."""
    report = (postgresql.insert(reports)
              .values({c.name: sa.bindparam(c.name, type_=c.type) for c in reports.c
                       if c.name not in ("level", "owner_area_id")})
              .on_conflict_do_nothing().returning(reports.c.seq).cte("report"))
    row = sa.select(sa.bindparam("message_id"), sa.bindparam("type"), sa.bindparam("body"),
                    sa.bindparam("created_at", type_=UTCDateTime)).select_from(report)
    return (outbox.outbox.insert().from_select(["message_id", "type", "body", "created_at"], row)
            .add_cte(report).returning(outbox.outbox.c.id))
