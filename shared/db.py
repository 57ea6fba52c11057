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

import sys
from datetime import UTC

from sqlalchemy import DateTime, MetaData, TypeDecorator, create_engine, event
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
