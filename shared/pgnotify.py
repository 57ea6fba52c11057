"""PostgreSQL notifications (``LISTEN``/``NOTIFY``) that wake a loop of this process when another process
commits: the outbox relay hears the API's and the scheduler's commits of messages (``outbox.CHANNEL``), and
the escalation API's live feed hears the workers' and the scheduler's timeline steps (``TIMELINE_CHANNEL``),
at once instead of at their next poll.

A notification is sent by ``notify`` inside the writer's transaction and delivered only when it commits; it
carries nothing (the listener reads what it needs), so a lost one costs at most a poll interval, never data.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import sqlalchemy as sa

from shared import logs

log = logs.get("gridcase.pgnotify")
#: Seconds a listener waits for a notification before it checks whether it should stop.
LISTEN_SECONDS = 1.0
#: Seconds a listener waits after losing its connection before it listens again (a failover in progress).
RETRY_SECONDS = 1.0
#: The channel escalation's commits that wrote timeline steps notify (its database only).
TIMELINE_CHANNEL = "gridcase_timeline"


def notify(connection: sa.Connection, channel: str) -> None:
    """Notify ``channel``'s listeners on this database when the connection's transaction commits (several
    notifications of one transaction to one channel are delivered as one)."""
    connection.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def listen(engine: sa.Engine, channel: str, heard: Callable[[], None], stopping: threading.Event, *,
           what: str) -> None:
    """Call ``heard()`` once as listening starts and for every notification on ``channel`` until
    ``stopping`` is set (within ``LISTEN_SECONDS``). Runs on a connection taken out of ``engine``'s pool for
    good (one more connection per listener); after a lost connection it listens again ``RETRY_SECONDS``
    later and calls ``heard()`` again, so whatever committed meanwhile is read. ``what`` names the listener
    in the log."""
    while not stopping.is_set():
        try:
            held = engine.raw_connection()
            connection = held.driver_connection
            held.detach()
            try:
                connection.autocommit = True
                connection.execute(f"LISTEN {channel}")
                heard()
                while not stopping.is_set():
                    for _ in connection.notifies(timeout=LISTEN_SECONDS):
                        heard()
            finally:
                connection.close()
        except Exception:
            if stopping.is_set():
                return
            log.warning("listening for commits failed; polling meanwhile", listener=what, channel=channel,
                        exc_info=True)
            stopping.wait(RETRY_SECONDS)


def listening(engine: sa.Engine, channel: str, heard: Callable[[], None], stopping: threading.Event, *,
              what: str) -> threading.Thread:
    """``listen`` on a daemon thread of its own, started; join it after setting ``stopping``."""
    thread = threading.Thread(target=listen, args=(engine, channel, heard, stopping), kwargs={"what": what},
                              name=f"listen-{what}", daemon=True)
    thread.start()
    return thread
