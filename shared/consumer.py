"""The idempotent consumer: everything common to every message handler, written once.

Messages are processed in batches: one transaction per batch records every message id in the inbox
with one statement (``(consumer, message id)``; ids already there are skipped) and hands the new
ones to the handler, ``handle(connection, deliveries)``, which writes its effects in the same
transaction; the batch is acked only after the commit. A batch that fails is retried one message
per transaction so that one poison message cannot hold back the rest; a failing message is rejected
back to the queue, and after the delivery limit RabbitMQ dead-letters it (the embedded bus counts
deliveries itself and stores the dead letter in the service database). Database outages, and
handlers that raise ``Unavailable``, are not the message's fault: the messages are held,
unacknowledged, and retried until the cause is gone.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from kombu import Consumer
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql, sqlite

from shared import bus
from shared.faults import crash_point
from shared.messages import Envelope, MessageError, read_payload
from shared.outbox import dead_letters, inbox
from shared.outbox import wakeup as outbox_wakeup

log = logging.getLogger("gridcase.consumer")
PROCESSED = Counter("gridcase_messages_processed_total", "Messages handled and committed", ["consumer"])
DUPLICATES = Counter("gridcase_messages_duplicate_total", "Messages skipped by the inbox", ["consumer"])
FAILED = Counter("gridcase_messages_failed_total", "Message deliveries that failed", ["consumer"])



@dataclass(frozen=True)
class Delivery:
    envelope: Envelope
    payload: dict


Handler = Callable[[sa.Connection, list[Delivery]], None]


def each(handle: Callable[[sa.Connection, Envelope, dict], None]) -> Handler:
    """A batch handler from a function that takes one message at a time."""
    def handle_all(db: sa.Connection, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            handle(db, delivery.envelope, delivery.payload)
    return handle_all


class Unavailable(RuntimeError):
    """Raised by a handler when the service cannot work yet (not the message's fault): hold and retry."""


TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, Unavailable)


class _Stored:
    """A message body read back from the dead-letter table, shaped like a kombu message."""

    def __init__(self, body: str):
        self.body = body


def claim(connection: sa.Connection, consumer: str, message_ids: list[str]) -> set[str]:
    """Record the messages in the inbox in one statement; returns the ids not processed before."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    now = datetime.now(UTC)
    statement = dialect.insert(inbox).values([{"consumer": consumer, "message_id": m, "processed_at": now}
                                              for m in dict.fromkeys(message_ids)]).on_conflict_do_nothing()
    return set(connection.execute(statement.returning(inbox.c.message_id)).scalars())


class ConsumerWorker:
    def __init__(self, subscription: bus.Subscription, handler: Handler, engine: sa.Engine, url: str, *,
                 delivery_limit: int = 5, batch_size: int = 200, prefetch: int = 500):
        self.subscription = subscription
        self.handler = handler
        self.engine = engine
        self.url = url
        self.delivery_limit = delivery_limit
        self.batch_size = batch_size
        self.prefetch = prefetch
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._batch: list = []
        self._failures: Tally = Tally()

    @property
    def name(self) -> str:
        return self.subscription.consumer

    def run(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                with bus.connect(self.url) as connection:
                    connection.ensure_connection(max_retries=1)
                    self._consume(connection)
                    backoff = 0.2
            except Exception:
                self.ready.clear()
                self._batch = []  # unacked deliveries return to the queue with the channel
                log.warning("consumer %s: connection lost, retrying in %.1fs", self.name, backoff,
                            exc_info=True)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def stop(self) -> None:
        self.stopping.set()

    def replay(self, body: str) -> None:
        """Process one dead-lettered message body again, through the inbox (``gridcase dlq replay``)."""
        with self.engine.begin() as db:
            self._process(db, [_Stored(body)])

    def _consume(self, connection) -> None:
        bus.declare_topology(connection, self.delivery_limit)
        queue = bus.queue_for(self.subscription, self.url, self.delivery_limit)
        with Consumer(connection, queues=[queue], on_message=self._on_message,
                      prefetch_count=self.prefetch, no_ack=False):
            self.ready.set()
            while not self.stopping.is_set():
                try:
                    connection.drain_events(timeout=0.005 if self._batch else 0.5)
                except TimeoutError:
                    self._flush(connection)
                    connection.heartbeat_check()
            self._flush(connection)

    def _on_message(self, message) -> None:
        self._batch.append(message)
        if len(self._batch) >= self.batch_size:
            self._flush(None)

    # -- processing -------------------------------------------------------------------------------

    def _flush(self, connection) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            if not self._commit_held(connection, batch):
                return  # stopping: unacked, redelivered to the next consumer
        except Exception:
            self._one_by_one(connection, batch)
            return
        crash_point("consumer.after_commit")
        self._ack(batch)
        outbox_wakeup(self.engine).set()

    def _commit_held(self, connection, batch) -> bool:
        """Process ``batch`` in one transaction, retrying while the cause is transient; False if stopped."""
        backoff = 0.2
        while True:
            try:
                with self.engine.begin() as db:
                    self._process(db, batch)
                return True
            except TRANSIENT as exc:
                if self.stopping.is_set():
                    return False
                log.warning("consumer %s: holding %d message(s): %s", self.name, len(batch), exc)
                self._pause(connection, backoff)
                backoff = min(backoff * 2, 5.0)

    def _one_by_one(self, connection, batch) -> None:
        for message in batch:
            try:
                if not self._commit_held(connection, [message]):
                    return
            except Exception as exc:
                self._failed(message, exc)
            else:
                message.ack()
                outbox_wakeup(self.engine).set()

    def _process(self, db: sa.Connection, messages) -> None:
        deliveries = []
        for message in messages:
            envelope = Envelope.from_json(message.body)
            if envelope.type not in self.subscription.routing_keys:
                raise MessageError(f"{self.name} does not take {envelope.type}")
            deliveries.append(Delivery(envelope, read_payload(envelope)))
        fresh = claim(db, self.name, [d.envelope.id for d in deliveries])
        new = []
        for delivery in deliveries:  # a message twice in one batch is new only the first time
            if delivery.envelope.id in fresh:
                fresh.discard(delivery.envelope.id)
                new.append(delivery)
        DUPLICATES.labels(self.name).inc(len(deliveries) - len(new))
        if new:
            self.handler(db, new)
        PROCESSED.labels(self.name).inc(len(new))

    def _ack(self, batch) -> None:
        if bus.is_amqp(self.url):
            batch[-1].ack(multiple=True)
        else:
            for message in batch:
                message.ack()

    def _failed(self, message, exc: Exception) -> None:
        FAILED.labels(self.name).inc()
        log.error("consumer %s: message %s failed: %s", self.name,
                  message.properties.get("message_id"), exc)
        if bus.is_amqp(self.url):
            message.reject(requeue=True)  # the quorum queue counts deliveries and dead-letters
            return
        key = message.properties.get("message_id") or hash(message.body)
        self._failures[key] += 1
        if self._failures[key] < self.delivery_limit:
            message.requeue()
            return
        del self._failures[key]
        body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else message.body
        with self.engine.begin() as db:
            db.execute(dead_letters.insert().values(
                consumer=self.name, message_id=message.properties.get("message_id"),
                routing_key=message.delivery_info.get("routing_key", ""), body=body,
                reason=str(exc)[:2000], failed_at=datetime.now(UTC)))
        message.ack()

    def _pause(self, connection, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            if connection is not None:
                connection.heartbeat_check()
            time.sleep(min(0.2, seconds))
