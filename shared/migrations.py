"""Alembic, one migration history per service, run programmatically on start.

``upgrade(engine, "intake")`` brings the service's schema up to date. On PostgreSQL an advisory
lock serialises concurrent starts (an API and a worker booting together).

A table is declared once, in its store's metadata (``services/<service>/store.py``, and
``shared.outbox`` / ``shared.inbox`` for the tables every service carries). A new migration is
generated from the difference between that metadata and the migrated schema:

    python -m shared.migrations SERVICE "what changed"     (or: make migration SERVICE=… MESSAGE=…)

and ``tests/integration/test_schema.py`` fails when the migrated schema and the metadata differ.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.attributes["service"] = service
    return config


def upgrade(engine: Engine, service: str, revision: str = "head") -> None:
    config = alembic_config(service)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            key = zlib.crc32(f"gridcase-migrate-{service}".encode())
            # a migration may rewrite a large table, and waits for another process's: no statement timeout
            connection.execute(sa.text("SET statement_timeout = 0"))
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.execute(sa.text("RESET statement_timeout"))
            connection.commit()


def target_metadata(service: str) -> list[sa.MetaData]:
    """What the service's schema should be: the shared messaging tables and the store's tables."""
    import importlib

    from shared import inbox, outbox, revocations  # noqa: F401 (their tables join messaging_metadata)
    from shared.db import messaging_metadata

    if not service:  # a migration run outside a service (no autogenerate): nothing to compare
        return []
    return [messaging_metadata, importlib.import_module(f"services.{service}.store").metadata]


def differences(engine: Engine, service: str, metadata: list[sa.MetaData] | None = None) -> list:
    """Alembic's comparison of the migrated schema with the metadata (default: the service's); empty
    when they agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                metadata or target_metadata(service))


def _render_item(kind: str, value, _context):
    """Generated migrations name plain SQLAlchemy types (``UTCDateTime`` is a DateTime with a zone)."""
    from shared.db import UTCDateTime

    if kind == "type" and isinstance(value, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_env() -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    connection = context.config.attributes["connection"]
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite",
                      target_metadata=target_metadata(context.config.attributes.get("service", "")),
                      compare_type=True, render_item=_render_item)
    with context.begin_transaction():
        context.run_migrations()


def revision(service: str, message: str) -> None:
    """Autogenerate the next migration of ``service`` against a scratch SQLite database at head."""
    import tempfile

    from shared.db import make_engine

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/{service}.db")
        upgrade(engine, service)
        config = alembic_config(service)
        number = len(list((SERVICES_DIR / service / "migrations" / "versions").glob("[0-9]*.py"))) + 1
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True, rev_id=f"{number:04d}")
        engine.dispose()


if __name__ == "__main__":
    import sys

    revision(sys.argv[1], sys.argv[2])


def create_messaging_tables(op) -> None:
    """The outbox and inbox every service carries, created by each service's first migration."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["id"], postgresql_where=sa.text("sent_at IS NULL"),
                    sqlite_where=sa.text("sent_at IS NULL"))
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("routing_key", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    )
