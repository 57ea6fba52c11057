"""Each table is declared once, in its store's metadata: the migrated schema must be exactly that."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from shared.db import make_engine
from shared.migrations import differences, target_metadata, upgrade

SERVICES = ("intake", "dispatch", "escalation")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/service.db"
    return request.getfixturevalue("postgres_url")


@pytest.mark.parametrize("service", SERVICES)
def test_the_migrations_build_exactly_the_tables_the_store_declares(database_url, service):
    engine = make_engine(database_url)
    upgrade(engine, service)
    try:
        assert differences(engine, service) == []
    finally:
        engine.dispose()


def test_a_column_declared_but_never_migrated_is_reported(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/intake.db")
    upgrade(engine, "intake")
    messaging, store = target_metadata("intake")
    changed = sa.MetaData()
    for table in store.tables.values():
        table.to_metadata(changed)
    changed.tables["reports"].append_column(sa.Column("declared_but_not_migrated", sa.Integer))
    try:
        assert [d[0] for d in differences(engine, "intake", [messaging, changed])] == ["add_column"]
    finally:
        engine.dispose()
