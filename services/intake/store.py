"""Intake's tables (migrations in ``migrations/``) and the queries on them."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime

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
