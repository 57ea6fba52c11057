"""Database engines: SQLite (embedded) and PostgreSQL via psycopg 3 (production).

SQLite runs in WAL mode with ``synchronous=FULL`` — a 2xx must mean the row survived a power cut —
and every transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy
timeout instead of failing on a lock upgrade.

PostgreSQL connections get libpq parameters that let a client outlive the death of the primary
(``CLIENT_PARAMETERS``): a connect timeout per host, TCP keepalives and a TCP user timeout, so a
connection to a host that vanished without closing it fails in seconds instead of the kernel's
minutes, and a statement timeout. A URL naming several hosts (libpq's ``?host=pg1:5432&host=pg2:5432``)
also gets ``target_session_attrs=read-write``: a new connection skips a standby and finds whichever
host is the primary now, so after a failover the pool's next connections reach the promoted standby
by themselves (the dead ones fail their statement once, which drops the pool's connections). A
parameter the URL sets itself wins.
"""
from __future__ import annotations

import functools
import json
import sys
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy import DateTime, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

#: The tables every service carries: outbox (``shared.outbox``), inbox and dead letters (``shared.inbox``).
messaging_metadata = MetaData()


def normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


#: libpq parameters of every PostgreSQL connection (a URL's own values win). Times in seconds unless named.
CLIENT_PARAMETERS = {
    "connect_timeout": "5",       # per host: a host that does not answer is given up for the next
    "keepalives": "1",
    "keepalives_idle": "10",      # an idle connection is probed after 10 s of silence,
    "keepalives_interval": "3",   # then every 3 s,
    "keepalives_count": "3",      # and dropped after 3 unanswered probes (~19 s)
    "tcp_user_timeout": "15000",  # milliseconds: sent data unacknowledged this long drops the connection
}
#: Milliseconds a statement may run (``statement_timeout``), so that none waits forever (on a lock held by a
#: session that will never end, on a server that stopped answering): long enough for the bulk statements of
#: administration (a statistics rebuild, an area import, a benchmark's load of 10⁶ cases); migrations lift
#: it for their own session (``shared.migrations``).
STATEMENT_TIMEOUT_MS = 300_000


def client_parameters(url: str) -> dict[str, str]:
    """The libpq parameters gridcase adds to a PostgreSQL URL: ``CLIENT_PARAMETERS``, ``options`` with
    ``-c statement_timeout=…`` and, for a URL naming several hosts, ``target_session_attrs=read-write``;
    each one only if the URL does not set it. Empty for SQLite."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "postgresql":
        return {}
    query = parsed.query
    out = {k: v for k, v in CLIENT_PARAMETERS.items() if k not in query}
    options = query.get("options") or ""
    if isinstance(options, tuple):
        options = " ".join(options)
    if "statement_timeout" not in options:
        out["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    hosts = query.get("host")
    several = isinstance(hosts, tuple) and len(hosts) > 1 or isinstance(hosts, str) and "," in hosts
    if several and "target_session_attrs" not in query:
        out["target_session_attrs"] = "read-write"
    return out


#: A process's connections to one database (``GRIDCASE_DB_POOL_SIZE`` kept open, up to
#: ``GRIDCASE_DB_MAX_OVERFLOW`` more under load): its connection budget is their sum.
POOL_SIZE = 5
MAX_OVERFLOW = 10


def make_engine(url: str, *, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW) -> Engine:
    """An engine for a database URL: SQLite (``sqlite:///path``) or PostgreSQL through psycopg 3
    (``postgresql://``, ``postgres://`` and ``postgresql+psycopg://`` alike, one host or several in
    libpq's form), with ``client_parameters(url)`` on every PostgreSQL connection. On PostgreSQL the
    process opens at most ``pool_size + max_overflow`` connections to it; a request that finds them all
    in use waits for one (up to 30 s, then an error: 503)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=pool_size, max_overflow=20)
        _configure_sqlite(engine)
        return engine
    _cooperate_with_gevent()
    # No pre-ping (a round trip per checkout): a dead connection fails its statement, the pool drops it
    # (and, on a disconnect, every connection made before it), and the caller answers 503 or retries.
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, connect_args=client_parameters(url))


def _cooperate_with_gevent() -> None:
    """psycopg 3 (≥ 3.1.14) waits on its sockets in a way gevent can switch greenlets on — if gevent had
    patched ``select`` when psycopg was imported. A gunicorn master imports psycopg (it migrates the
    schema) before forking workers that patch: in such a worker psycopg's C wait function, which blocks
    the whole process, is replaced with its ``select.poll`` one, as psycopg chooses it under gevent."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("select"):
        return
    from psycopg import waiting

    if waiting.wait is getattr(waiting, "wait_c", None):
        waiting.wait = waiting.wait_poll


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite itself keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: The column types ``insert_rows`` carries through JSON with the values executemany would store.
_JSON_SAFE = (sa.String, sa.Integer, sa.Float, sa.Boolean, sa.JSON, sa.Date)


def insert_rows(connection: sa.Connection, table: sa.Table, rows: list[dict], *, returning: sa.Column | None = None,
                skip_conflicts: bool = False) -> list:
    """Insert ``rows`` (dicts keyed by column name, all naming the columns of the first; a column not
    named takes its default) into ``table`` in the caller's transaction. Returns the ``returning``
    column's values of the rows inserted (empty when not asked); ``skip_conflicts``: a row whose key is
    already there is skipped (``ON CONFLICT DO NOTHING``).

    On PostgreSQL the rows travel as one JSON document read by ``json_populate_recordset`` with the
    table's own row type: one statement of one shape, built and converted once, where executemany
    builds and converts a parameter set per row and column. The stored values are executemany's: a
    ``JSON`` column's ``None`` is JSON ``null`` (SQL NULL only with ``none_as_null``), its value keeps
    ``json.dumps``'s text, datetimes travel as ISO 8601 with their offset (a naive one as UTC, as
    ``UTCDateTime`` stores it). A table with a column type not carried exactly this way
    (``_json_safe``), or a value ``json.dumps`` refuses (NaN, an object), goes through executemany, as on
    SQLite. (One difference: a datetime inside a ``JSON`` column's value is written as its ISO 8601 text,
    where executemany refuses it.)"""
    if not rows:
        return []
    names = tuple(rows[0])
    if connection.dialect.name == "postgresql" and _json_safe(table, names):
        document = _document(rows)
        if document is not None:
            result = connection.execute(_json_insert(table, names, returning, skip_conflicts), {"rows": document})
            return list(result.scalars()) if returning is not None else []
    statement = table.insert()
    if skip_conflicts:
        statement = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(table)
        statement = statement.on_conflict_do_nothing()
    if returning is not None:
        return list(connection.execute(statement.returning(returning), rows).scalars())
    connection.execute(statement, rows)
    return []


def update_rows(connection: sa.Connection, table: sa.Table, rows: list[dict], *, match: str) -> None:
    """Update ``table`` in the caller's transaction: each row (a dict naming ``match`` and the columns
    to set, all naming the columns of the first) sets its columns in every row of ``table`` whose column
    ``match`` equals its ``match`` value; each ``match`` value at most once in ``rows`` (which one of two
    would win is not defined).

    On PostgreSQL one ``UPDATE … FROM json_populate_recordset(…)`` (as ``insert_rows``, with the same
    values stored); elsewhere, or for a table or value JSON does not carry exactly, executemany."""
    if not rows:
        return
    names = tuple(rows[0])
    if connection.dialect.name == "postgresql" and _json_safe(table, names, update=True):
        document = _document(rows)
        if document is not None:
            connection.execute(_json_update(table, names, match), {"rows": document})
            return
    statement = table.update().where(table.c[match] == sa.bindparam("b_match"))
    connection.execute(statement, [{"b_match": row[match], **{k: v for k, v in row.items() if k != match}}
                                   for row in rows])


def _document(rows: list[dict]) -> str | None:
    """The rows as one JSON array, datetimes and dates as ISO 8601 (``_iso``); None when JSON cannot carry
    a value. The encoder converts the times it meets (``default``) rather than the rows being copied with
    their time columns converted first, which cost more than the encoding (cProfile)."""
    try:
        return json.dumps(rows, allow_nan=False, default=_iso)
    except (TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=256)
def _json_safe(table: sa.Table, names: tuple[str, ...], update: bool = False) -> bool:
    """Whether every named column of ``table`` exists and has a type ``insert_rows`` carries exactly, and
    no column left out has a default (an insert) or ``onupdate`` (an update) computed by SQLAlchemy,
    which executemany would fill in."""
    for name in names:
        if name not in table.c:
            return False
        kind = table.c[name].type
        if not (_is_time(kind) or isinstance(kind, _JSON_SAFE) and not isinstance(kind, (TypeDecorator, sa.Enum))):
            return False
    computed = (lambda column: column.onupdate) if update else (lambda column: column.default)
    return all(computed(column) is None for column in table.c if column.name not in names)


def _is_time(kind) -> bool:
    """A timezone-aware timestamp column (``UTCDateTime``, ``DateTime(timezone=True)``)."""
    return isinstance(kind, UTCDateTime) or type(kind) is DateTime and kind.timezone


def _iso(value):
    """A datetime (naive: UTC, as ``UTCDateTime`` stores it) or date as ISO 8601; ``TypeError`` for any
    other value JSON does not know (the rows then go through executemany)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not carried in JSON")


@functools.lru_cache(maxsize=256)
def _json_insert(table: sa.Table, names: tuple[str, ...], returning: sa.Column | None, skip_conflicts: bool):
    """``INSERT INTO table (names) SELECT names FROM json_populate_recordset(NULL::table, :rows)``, with a
    ``JSON`` column's SQL NULL turned into JSON ``null`` as executemany stores it."""
    quote = postgresql_dialect().identifier_preparer.quote
    target = ".".join(quote(part) for part in ((table.schema,) if table.schema else ()) + (table.name,))
    columns = ", ".join(quote(name) for name in names)
    selected = ", ".join(
        f"COALESCE({quote(name)}, 'null'::json)"
        if isinstance(table.c[name].type, sa.JSON) and not table.c[name].type.none_as_null else quote(name)
        for name in names)
    text = (f"INSERT INTO {target} ({columns}) SELECT {selected} "
            f"FROM json_populate_recordset(NULL::{target}, CAST(:rows AS json)) WITH ORDINALITY AS r "
            "ORDER BY r.ordinality")  # the rows in their order (a serial key numbers them so)
    if skip_conflicts:
        text += " ON CONFLICT DO NOTHING"
    if returning is not None:
        text += f" RETURNING {quote(returning.name)}"
    return sa.text(text)


@functools.lru_cache(maxsize=256)
def _json_update(table: sa.Table, names: tuple[str, ...], match: str):
    """``UPDATE table SET name = r.name, … FROM json_populate_recordset(NULL::table, :rows) AS r WHERE
    table.match = r.match``, a ``JSON`` column's SQL NULL turned into JSON ``null`` as executemany stores it."""
    quote = postgresql_dialect().identifier_preparer.quote
    target = ".".join(quote(part) for part in ((table.schema,) if table.schema else ()) + (table.name,))
    sets = ", ".join(
        f"{quote(name)} = COALESCE(r.{quote(name)}, 'null'::json)"
        if isinstance(table.c[name].type, sa.JSON) and not table.c[name].type.none_as_null
        else f"{quote(name)} = r.{quote(name)}" for name in names if name != match)
    return sa.text(f"UPDATE {target} AS t SET {sets} FROM json_populate_recordset(NULL::{target}, "
                   f"CAST(:rows AS json)) AS r WHERE t.{quote(match)} = r.{quote(match)}")


@functools.cache
def postgresql_dialect():
    """A PostgreSQL dialect (its identifier quoting, for the statements written as text here)."""
    return postgresql.dialect()
