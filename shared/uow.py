"""The unit of work: one transaction per use case, with the messages it causes.

Every use case — from an HTTP view, a consumer, the scheduler or the command line — runs as::

    with uow:
        thing = uow.store.get(...)        # the store is the only place with SQL
        step = thing.do_something(now)    # the domain decides
        uow.store.save(thing)
        uow.add(SomethingHappened(...))   # typed messages, written to the outbox at commit
        uow.commit()

``commit`` writes the messages to the outbox in the same transaction, commits, and then wakes what
waits on this database in this process (``on_commit``: the relay, the scheduler) — here and nowhere
else. Leaving the block without a commit rolls back.

A unit of work can be entered again while open: a consumer opens it, records the batch in its inbox,
hands it to the handler (whose own ``with uow`` / ``commit`` then joins the consumer's transaction),
and commits once for the whole batch. The connection is opened on first use, so a use case that only
needs one statement (intake's report and its message) can run it outside an explicit transaction.
"""
from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Generic, TypeVar

import sqlalchemy as sa

from shared import outbox
from shared.clock import Clock
from shared.logs import current_traceparent
from shared.messages import Envelope, make_message
from shared.messages.events import Message


class CommitEvent(threading.Event):
    """Set after a commit on one database (``messages_only``: a commit that wrote outbox messages)."""

    def __init__(self, messages_only: bool):
        super().__init__()
        self.messages_only = messages_only


#: database URL → the events its commits set in this process
_commit_listeners: dict[str, list[CommitEvent]] = defaultdict(list)


@functools.cache
def _database(engine: sa.Engine) -> str:
    """The key of ``engine``'s database in ``_commit_listeners``: its URL, rendered once (a URL renders
    in microseconds, and every unit of work and report asks)."""
    return str(engine.url)


def on_commit(engine: sa.Engine, *, messages_only: bool = False) -> CommitEvent:
    """A new event, set after each commit of a unit of work on ``engine``'s database in this process
    (``messages_only``: each commit that wrote outbox messages). The relay waits on one, so a message
    is published at once; the escalation scheduler on another, so a new or changed deadline wakes it.
    Other processes' commits are seen at their next poll. The listener clears it, and gives it back
    with ``forget`` when it stops."""
    event = CommitEvent(messages_only)
    _commit_listeners[_database(engine)].append(event)
    return event


def relay_elsewhere(engine: sa.Engine) -> bool:
    """Whether the outbox rows this process writes to ``engine``'s database are published by a relay in
    another process (PostgreSQL, and no relay here waits on ``on_commit``): the API under gunicorn, the
    scheduler or the notifier in their own processes. Their commits then wake it with a PostgreSQL
    notification (``outbox.wake``), which its listener hears at once instead of at its next poll."""
    return engine.dialect.name == "postgresql" and not any(
        listener.messages_only for listener in _commit_listeners[_database(engine)])


def forget(engine: sa.Engine, event: CommitEvent) -> None:
    """Commits on ``engine``'s database no longer set ``event``."""
    listeners = _commit_listeners[_database(engine)]
    if event in listeners:
        listeners.remove(event)


class Store:
    """Base of each service's store: queries over the unit of work's connection, opened lazily."""

    def __init__(self, connect: Callable[[], sa.Connection], engine: sa.Engine):
        self._connect = connect
        self.engine = engine

    @property
    def db(self) -> sa.Connection:
        return self._connect()

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def flush(self, envelopes: list[Envelope]) -> None:
        """At commit: write the unit of work's messages to the outbox (and wake a relay of another
        process: ``relay_elsewhere``). A store that holds rows back until commit writes them here too
        (intake writes a report and its message in one statement)."""
        outbox.add(self.db, envelopes)
        if envelopes and relay_elsewhere(self.engine):
            outbox.wake(self.db)


S = TypeVar("S", bound=Store)


class UnitOfWork(Generic[S]):
    def __init__(self, engine: sa.Engine, store: Callable[..., S], *, producer: str, clock: Clock):
        self.engine = engine
        self.producer = producer
        self.clock = clock
        self._store_factory = store
        self._depth = 0
        self._connection: sa.Connection | None = None
        self._transaction = None
        self._envelopes: list[Envelope] = []
        self._listeners = _commit_listeners[_database(engine)]  # the list itself: later listeners join it
        self.store: S = store(self._open, engine)

    # -- the block ---------------------------------------------------------------------------------

    def __enter__(self) -> UnitOfWork[S]:
        if self._depth == 0:
            self._envelopes = []
            self.store = self._store_factory(self._open, self.engine)
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._close(rollback=True)

    @property
    def connection(self) -> sa.Connection:
        """The transaction's connection (opened, and the transaction begun, on first use)."""
        return self._open()

    def _open(self) -> sa.Connection:
        if self._depth == 0:
            raise RuntimeError("use the store inside `with uow:`")
        if self._connection is None:
            self._connection = self.engine.connect()
            self._transaction = self._connection.begin()
        return self._connection

    # -- messages and commit -----------------------------------------------------------------------

    def add(self, *messages: Message, cause: Message | None = None) -> None:
        """Messages to publish if, and only if, this unit of work commits. ``cause``: the message that
        led to them (its trace context is carried on); otherwise the current request's."""
        now = self.clock.now()
        trace = getattr(cause.envelope, "traceparent", None) if cause is not None and cause.envelope else None
        for message in messages:
            self._envelopes.append(make_message(message, occurred_at=now, producer=self.producer,
                                                traceparent=trace or current_traceparent()))

    def commit(self) -> None:
        """Write the messages to the outbox, commit, wake the ``on_commit`` listeners. Inside an
        enclosing block (a consumer's batch) this is left to the outermost owner, so the batch commits
        as one."""
        if self._depth > 1:
            return
        envelopes, self._envelopes = self._envelopes, []
        self.store.flush(envelopes)
        if self._transaction is not None:
            self._transaction.commit()
        for listener in self._listeners:
            if envelopes or not listener.messages_only:
                listener.set()

    def rollback(self) -> None:
        self._envelopes = []
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()

    def _close(self, *, rollback: bool) -> None:
        connection, self._connection = self._connection, None
        transaction, self._transaction = self._transaction, None
        self._envelopes = []
        if connection is None:
            return
        try:
            if rollback and transaction is not None and transaction.is_active:
                transaction.rollback()
        finally:
            connection.close()
