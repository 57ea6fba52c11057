"""The outbox relay: publishes unsent outbox rows and marks them sent only after the broker has them.

On RabbitMQ it uses pika with pipelined publisher confirms (a whole batch in flight, acks counted
as they arrive) and mandatory publishes; everywhere else kombu. A crash between the broker's
confirm and the UPDATE publishes the batch again on restart: consumers' inboxes absorb that.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from kombu import Producer
from prometheus_client import Counter

from shared import bus
from shared.faults import crash_point
from shared.outbox import inbox, outbox
from shared.outbox import wakeup as outbox_wakeup

log = logging.getLogger("gridcase.relay")
#: Sent outbox rows are kept a day (the embedded replay needs the last hour); inbox rows a week, far
#: beyond any redelivery (a message is redelivered within minutes, or dead-lettered).
OUTBOX_RETENTION = timedelta(days=1)
INBOX_RETENTION = timedelta(days=7)
PUBLISHED = Counter("gridcase_outbox_published_total", "Outbox messages confirmed by the broker", ["service"])


class PublishError(RuntimeError):
    pass


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


class Relay:
    def __init__(self, engine: sa.Engine, service: str, publisher_factory, *, batch_size: int = 1000,
                 poll_interval: float = 0.02, replay_window: timedelta | None = None):
        self.engine = engine
        self.service = service
        self.publisher_factory = publisher_factory
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.replay_window = replay_window
        self.stopping = threading.Event()
        self.wakeup = outbox_wakeup(engine)
        self.publisher = None
        self._last_heartbeat = 0.0

    def run(self) -> None:
        """Publish until stopped, reconnecting to the broker with backoff."""
        if self.replay_window is not None:
            self._reset_recent()
        backoff = 0.2
        next_prune = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() >= next_prune:
                    now = datetime.now(UTC)
                    prune(self.engine, sent_before=now - OUTBOX_RETENTION, processed_before=now - INBOX_RETENTION)
                    next_prune = time.monotonic() + 600
                if self.publisher is None:
                    self.publisher = self.publisher_factory()
                    backoff = 0.2
                if self.run_once() == 0:
                    self._idle()
            except Exception:  # broker or database trouble: back off and retry, never give up
                log.warning("relay %s: publishing failed, retrying in %.1fs", self.service, backoff,
                            exc_info=True)
                self._drop_publisher()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._drop_publisher()

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        with self.engine.begin() as connection:
            query = (sa.select(outbox.c.id, outbox.c.message_id, outbox.c.type, outbox.c.body)
                     .where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(self.batch_size))
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            if not rows:
                return 0
            self.publisher.publish(rows)
            crash_point("relay.after_confirm")
            connection.execute(outbox.update().where(outbox.c.id.in_([r.id for r in rows]))
                               .values(sent_at=datetime.now(UTC)))
        PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()

    def _idle(self) -> None:
        """Until the next poll, or until a commit in this process wrote outbox rows."""
        if self.wakeup.wait(self.poll_interval):
            self.wakeup.clear()
        if time.monotonic() - self._last_heartbeat > 1.0:
            self.publisher.heartbeat()
            self._last_heartbeat = time.monotonic()

    def _drop_publisher(self) -> None:
        if self.publisher is not None:
            try:
                self.publisher.close()
            except Exception:
                log.debug("closing publisher failed", exc_info=True)
            self.publisher = None

    def _reset_recent(self) -> None:
        """Embedded mode: the in-memory bus forgets on a crash, so recently sent rows go out again."""
        since = datetime.now(UTC) - self.replay_window
        with self.engine.begin() as connection:
            connection.execute(outbox.update().where(outbox.c.sent_at >= since).values(sent_at=None))


def publisher_factory(url: str, delivery_limit: int):
    if bus.is_amqp(url):
        from shared.pika_publisher import PikaConfirmPublisher
        return lambda: PikaConfirmPublisher(url, delivery_limit)
    return lambda: KombuPublisher(url, delivery_limit)


def prune(engine: sa.Engine, *, sent_before: datetime, processed_before: datetime) -> None:
    """Housekeeping: forget outbox rows long sent and inbox rows past any redelivery."""
    with engine.begin() as connection:
        connection.execute(outbox.delete().where(outbox.c.sent_at < sent_before))
        connection.execute(inbox.delete().where(inbox.c.processed_at < processed_before))
