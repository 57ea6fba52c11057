"""``shared.db.insert_rows`` and ``update_rows`` store what executemany stores, on SQLite and PostgreSQL:
the same rows written both ways into two tables of one shape read back the same, column by column as the
database's own text (a ``JSON`` column's ``None`` as JSON ``null``, its text as ``json.dumps`` wrote it,
timestamps from any offset or none, dates, floats to the last digit, defaults of the columns left out,
serial keys in the rows' order); a value JSON cannot carry (NaN) still goes in; a conflicting key is
skipped and only the new rows' keys come back; an update sets the named columns of every row matched, by
a key or another column."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from harness.servers import create_database, drop_database
from shared.db import UTCDateTime, insert_rows, make_engine, update_rows
from tests.support.system import required_server


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url, dropped = f"sqlite:///{tmp_path}/rows.db", None
    else:
        admin = required_server("GRIDCASE_TEST_POSTGRES_URL")
        name = f"gridcase_rows_{uuid.uuid4().hex[:10]}"
        url, dropped = create_database(admin, name), (admin, name)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    if dropped:
        drop_database(*dropped)


def tables(metadata: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(36), nullable=False, unique=True),
        sa.Column("text", sa.Text),
        sa.Column("number", sa.Integer),
        sa.Column("real", sa.Float),
        sa.Column("flag", sa.Boolean),
        sa.Column("doc", sa.JSON),
        sa.Column("at", UTCDateTime),
        sa.Column("day", sa.Date),
        sa.Column("kept", sa.Integer, nullable=False, server_default="7"),
        sa.Column("yes", sa.Boolean, nullable=False, server_default=sa.true()),
    )


NOW = datetime(2026, 12, 5, 9, 30, 1, 123456, tzinfo=UTC)
ROWS = [
    {"key": "a", "text": "路灯 \"坏了\" \\ '", "number": 2**31 - 1, "real": 0.1, "flag": True,
     "doc": {"x": [1, "é", None], "y": {"z": 1.5}}, "at": NOW, "day": date(2026, 12, 5)},
    {"key": "b", "text": None, "number": None, "real": 1e300, "flag": False, "doc": None,
     "at": datetime(2026, 12, 5, 17, 30, tzinfo=timezone(timedelta(hours=8))), "day": None},
    {"key": "c", "text": "", "number": -1, "real": 2 / 3, "flag": None, "doc": [],
     "at": datetime(2026, 12, 5, 9, 30), "day": date(2026, 1, 1)},  # a naive time is UTC (UTCDateTime)
    {"key": "d", "text": "x", "number": 0, "real": -0.0, "flag": True, "doc": "just a string", "at": None,
     "day": date(2026, 2, 28)},
]


def stored(connection: sa.Connection, table: sa.Table) -> list[tuple]:
    """Each row as the database's own text of each column, by id."""
    return [tuple(row) for row in connection.execute(
        sa.select(*(sa.cast(column, sa.Text) for column in table.c)).order_by(table.c.id))]


def test_rows_inserted_from_json_read_back_as_executemany_stores_them(engine):
    metadata = sa.MetaData()
    mine, theirs = tables(metadata, "mine"), tables(metadata, "theirs")
    metadata.create_all(engine)
    with engine.begin() as connection:
        assert insert_rows(connection, mine, ROWS) == []
        connection.execute(theirs.insert(), ROWS)
    with engine.connect() as connection:
        assert stored(connection, mine) == stored(connection, theirs)
        [doc_null] = connection.execute(sa.select(sa.cast(mine.c.doc, sa.Text)).where(mine.c.key == "b")).one()
        assert doc_null == "null"  # JSON null, not SQL NULL, as executemany stores None
        assert [r.at for r in connection.execute(sa.select(mine.c.at).order_by(mine.c.id))] == [
            NOW, datetime(2026, 12, 5, 9, 30, tzinfo=UTC), datetime(2026, 12, 5, 9, 30, tzinfo=UTC), None]


def test_a_value_json_cannot_carry_goes_in_all_the_same(engine):
    metadata = sa.MetaData()
    mine, theirs = tables(metadata, "mine"), tables(metadata, "theirs")
    metadata.create_all(engine)
    rows = [{"key": "n", "real": float("nan")}, {"key": "i", "real": float("inf")}]
    with engine.begin() as connection:
        insert_rows(connection, mine, rows)
        connection.execute(theirs.insert(), rows)
    with engine.connect() as connection:
        assert stored(connection, mine) == stored(connection, theirs)


def test_conflicting_keys_are_skipped_and_only_new_keys_come_back(engine):
    metadata = sa.MetaData()
    mine = tables(metadata, "mine")
    metadata.create_all(engine)
    with engine.begin() as connection:
        assert insert_rows(connection, mine, [{"key": "a"}, {"key": "b"}], returning=mine.c.key,
                           skip_conflicts=True) == ["a", "b"]
        again = insert_rows(connection, mine, [{"key": "b", "text": "new"}, {"key": "c", "text": None}],
                            returning=mine.c.key, skip_conflicts=True)
        assert again == ["c"]
        assert insert_rows(connection, mine, []) == []
    with engine.connect() as connection:
        assert connection.execute(sa.select(mine.c.key, mine.c.text).order_by(mine.c.key)).all() == [
            ("a", None), ("b", None), ("c", None)]


def test_rows_updated_from_json_read_back_as_executemany_stores_them(engine):
    metadata = sa.MetaData()
    mine, theirs = tables(metadata, "mine"), tables(metadata, "theirs")
    metadata.create_all(engine)
    changes = [{"key": "a", "text": None, "doc": None, "at": datetime(2026, 12, 6, 8, 0), "real": 1 / 3},
               {"key": "c", "text": "新", "doc": {"k": ["v"]}, "at": NOW, "real": None}]
    by_number = [{"number": -1, "day": date(2027, 1, 1), "flag": False}]  # the rows of a column's value
    with engine.begin() as connection:
        for table in (mine, theirs):
            connection.execute(table.insert(), [*ROWS, {**ROWS[3], "key": "e", "number": -1}])
        update_rows(connection, mine, changes, match="key")
        update_rows(connection, mine, by_number, match="number")
        update_rows(connection, mine, [], match="key")
        for match, rows in (("key", changes), ("number", by_number)):
            connection.execute(theirs.update().where(theirs.c[match] == sa.bindparam("b_match")),
                               [{"b_match": row[match], **{k: v for k, v in row.items() if k != match}}
                                for row in rows])
    with engine.connect() as connection:
        assert stored(connection, mine) == stored(connection, theirs)
        assert connection.execute(sa.select(mine.c.key).where(mine.c.day == date(2027, 1, 1))
                                  .order_by(mine.c.key)).scalars().all() == ["c", "e"]
