"""The outbox relay: publishes unsent outbox rows and marks them sent only after the broker has them.

On RabbitMQ it uses pika with pipelined publisher confirms (``shared.pika_publisher``: a whole batch
in flight, acks counted as they arrive) and mandatory publishes; on the embedded ``memory://`` bus,
kombu. Rows are marked sent in the transaction that read them, only after every confirm: a nack, a lost
connection or a timeout rolls it back, the publisher is dropped, and the next one connects to the next
live node of the broker URL and publishes the rows again. A crash between the broker's confirm and the
UPDATE publishes the batch again on restart: consumers' inboxes absorb that. Broker or database
trouble is retried with exponential backoff (tenacity), forever.

When idle the relay sleeps until a commit of messages wakes it or its poll interval passes; the interval
doubles while nothing is waiting, up to ``idle_poll`` — long in the embedded mode, where every writer is in
the same process, short in production, where the API that writes the rows is another process. A commit in
its own process wakes it through ``shared.uow.on_commit``; on PostgreSQL a commit in another process (the
API under gunicorn, the scheduler) notifies ``outbox.CHANNEL`` and a listener thread of the relay, on a
connection of its own, wakes it as the notification arrives (``shared.pgnotify``,
``shared.uow.relay_elsewhere``).
"""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from kombu import Producer
from prometheus_client import Counter
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from shared import bus, logs, outbox, pgnotify
from shared.faults import crash_point
from shared.uow import forget, on_commit

log = logs.get("gridcase.relay")
#: Sent outbox rows are kept a day (the embedded replay needs the last hour).
OUTBOX_RETENTION = timedelta(days=1)
PUBLISHED = Counter("gridcase_outbox_published_total", "Outbox messages confirmed by the broker", ["service"])


class KombuPublisher:
    """For ``memory://`` (embedded): publishing is synchronous and in-process."""

    def __init__(self, url: str, delivery_limit: int):
        self.connection = bus.connect(url)
        bus.declare_topology(self.connection, delivery_limit)
        self.producer = Producer(self.connection.default_channel, exchange=bus.EXCHANGE)

    def publish(self, rows) -> None:
        for row in rows:
            self.producer.publish(row.body, routing_key=row.type, delivery_mode=2,
                                  content_type="application/json", content_encoding="utf-8",
                                  message_id=row.message_id)

    def heartbeat(self) -> None:
        """Nothing to keep alive in memory."""

    def close(self) -> None:
        self.connection.release()


def publisher_factory(url: str, delivery_limit: int):
    """Makes the relay's publishers: on RabbitMQ each new one (after a failure) connects to the next node
    of ``url`` that answers; in memory, kombu."""
    if bus.is_amqp(url):
        from shared.pika_publisher import NodeRing, PikaConfirmPublisher
        ring = NodeRing(url)
        return lambda: PikaConfirmPublisher(url, delivery_limit, ring=ring)
    return lambda: KombuPublisher(url, delivery_limit)


class Relay:
    def __init__(self, engine: sa.Engine, service: str, publisher_factory, *, batch_size: int = 1000,
                 poll_interval: float = 0.02, idle_poll: float = 0.25, replay_window: timedelta | None = None):
        self.engine = engine
        self.service = service
        self.publisher_factory = publisher_factory
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.idle_poll = idle_poll
        self.replay_window = replay_window
        self.stopping = threading.Event()
        self.wakeup = on_commit(engine, messages_only=True)
        self.publisher = None
        self._wait = poll_interval
        self._last_heartbeat = 0.0
        self._next_prune = 0.0
        self._retrying = Retrying(
            wait=wait_exponential(multiplier=0.2, max=5), retry=retry_if_exception_type(Exception),
            stop=lambda _state: self.stopping.is_set(), sleep=self.stopping.wait, before_sleep=self._failed,
            retry_error_callback=lambda _state: None)

    def run(self) -> None:
        """Publish until stopped; each step is retried with backoff, which starts over after a success."""
        if self.replay_window is not None:
            self._retrying(self._reset_recent)
        listener = None
        if self.engine.dialect.name == "postgresql":
            listener = pgnotify.listening(self.engine, outbox.CHANNEL, self.wakeup.set, self.stopping,
                                          what=f"relay-{self.service}")
        while not self.stopping.is_set():
            self._retrying(self._step)
        self._drop_publisher()
        if listener is not None:
            listener.join(pgnotify.LISTEN_SECONDS + 1)

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()
        forget(self.engine, self.wakeup)

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        if self.publisher is None:
            self.publisher = self.publisher_factory()
        with self.engine.begin() as connection:
            rows = outbox.unsent(connection, self.batch_size, lock=True)
            if not rows:
                return 0
            self.publisher.publish(rows)
            crash_point("relay.after_confirm")
            outbox.mark_sent(connection, [r.id for r in rows])
        PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    def _step(self) -> None:
        if time.monotonic() >= self._next_prune:
            with self.engine.begin() as connection:
                outbox.prune(connection, datetime.now(UTC) - OUTBOX_RETENTION)
            self._next_prune = time.monotonic() + 600
        self.wakeup.clear()  # a commit from here on wakes the wait below, however quick
        if self.stopping.is_set():  # ``stop`` sets the flag before the event this clear may have taken
            return
        published = self.run_once()
        if published >= self.batch_size:
            self._wait = self.poll_interval
            return  # a full batch: more are waiting
        # Every row committed before the query is published; one committed since has set the event (or,
        # written by a process that cannot wake this one, is found by the poll): no second query now.
        if published:
            self._wait = self.poll_interval
        if self.wakeup.wait(self._wait):
            self._wait = self.poll_interval
        elif not published:
            self._wait = min(self._wait * 2, self.idle_poll)
        if time.monotonic() - self._last_heartbeat > 1.0:
            self.publisher.heartbeat()
            self._last_heartbeat = time.monotonic()

    def _failed(self, state) -> None:
        log.warning("publishing failed; retrying", service=self.service, retry_in=round(state.upcoming_sleep, 2),
                    error=repr(state.outcome.exception()))
        self._drop_publisher()

    def _drop_publisher(self) -> None:
        if self.publisher is not None:
            try:
                self.publisher.close()
            except Exception:
                log.debug("closing publisher failed", exc_info=True)
            self.publisher = None

    def _reset_recent(self) -> None:
        """Embedded mode: the in-memory bus forgets on a crash, so recently sent rows go out again."""
        with self.engine.begin() as connection:
            outbox.resend_since(connection, datetime.now(UTC) - self.replay_window)
