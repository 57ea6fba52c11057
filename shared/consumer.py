"""The idempotent consumer: everything common to every message handler, written once.

A service declares its consumers in its ``consumers.py`` (``Consumer(subscription, handler)``); this
module runs them. Messages are processed in batches: one unit of work per batch records every message
id in the inbox with one statement (ids already there are skipped) and hands the new ones, typed, to
the handler, whose effects and messages commit with the inbox rows; the batch is acked only after the
commit. A batch that fails is retried one message per unit of work so that one poison message cannot
hold back the rest; a failing message is rejected back to the queue, and after the delivery limit
RabbitMQ dead-letters it (the embedded bus counts deliveries itself and stores the dead letter in the
service database). Database outages, and handlers that raise ``Unavailable``, are not the message's
fault: the messages are held, unacknowledged, and retried until the cause is gone (tenacity).

Broker connections and reconnects are kombu's ``ConsumerMixin``; only its drain loop is ours, so a
partly filled batch is flushed after ``FLUSH_AFTER`` without a message instead of the mixin's fixed
interval (deliveries that arrive while a batch is handled wait in the prefetch and make the next batch,
so a busy consumer still handles them in bulk; an idle one does not hold a message back). A
broker URL listing several nodes fails over in kombu: a lost connection reconnects to the next node that
answers, and the deliveries the lost channel held go back to the queue (the inbox absorbs them).
"""
from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import sqlalchemy as sa
from kombu.mixins import ConsumerMixin
from prometheus_client import Counter
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from shared import bus, inbox, logs
from shared.faults import crash_point
from shared.messages import Envelope, MessageError, read_message
from shared.messages.events import Message
from shared.uow import UnitOfWork

log = logs.get("gridcase.consumer")
PROCESSED = Counter("gridcase_messages_processed_total", "Messages handled and committed", ["consumer"])
DUPLICATES = Counter("gridcase_messages_duplicate_total", "Messages skipped by the inbox", ["consumer"])
FAILED = Counter("gridcase_messages_failed_total", "Message deliveries that failed", ["consumer"])
#: Inbox rows are kept a week, far beyond any redelivery.
INBOX_RETENTION = timedelta(days=7)
#: Seconds without a delivery after which a partly filled batch is handled.
FLUSH_AFTER = 0.001


class Unavailable(RuntimeError):
    """Raised by a handler when the service cannot work yet (not the message's fault): hold and retry."""


TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, Unavailable)


@dataclass(frozen=True)
class Consumer:
    """A service's consumer: the subscription (``shared.bus.SUBSCRIPTIONS``) it serves and its handler.

    ``handler(message, uow, **dependencies)`` takes one message at a time; with ``batch=True``,
    ``handler(messages, uow, **dependencies)`` takes the whole batch (a list), for handlers that gain
    from vectorised work (dispatch locates a batch of points at once)."""
    subscription: str
    handler: Callable
    batch: bool = False

    def bind(self, handler: Callable) -> Callable[[list[Message], UnitOfWork], None]:
        """``handler`` (with its dependencies bound) as a batch function."""
        if self.batch:
            return handler

        def each(messages: list[Message], uow: UnitOfWork) -> None:
            for message in messages:
                envelope = message.envelope
                with logs.traced(envelope.traceparent, message_id=envelope.id, type=envelope.type,
                                 case_id=envelope.correlation_id):
                    handler(message, uow)
        return each


class _Stored:
    """A message body read back from the dead-letter table, shaped like a kombu message."""

    def __init__(self, body: str):
        self.body = body


class ConsumerWorker(ConsumerMixin):
    def __init__(self, subscription: bus.Subscription, handle: Callable[[list[Message], UnitOfWork], None],
                 uow: UnitOfWork, url: str, *, delivery_limit: int = 5, batch_size: int = 200, prefetch: int = 500):
        self.subscription = subscription
        self.handle = handle
        self.uow = uow
        self.url = url
        self.connection = bus.connect(url)
        self.delivery_limit = delivery_limit
        self.batch_size = batch_size
        self.prefetch = prefetch
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._batch: list = []
        self._failures: Tally = Tally()
        self._next_prune = 0.0
        self._retrying = Retrying(
            wait=wait_exponential(multiplier=0.2, max=5), retry=retry_if_exception_type(TRANSIENT),
            stop=lambda _state: self.stopping.is_set(), sleep=self._pause, before_sleep=self._holding,
            retry_error_callback=lambda _state: False)

    @property
    def name(self) -> str:
        return self.subscription.consumer

    @property
    def should_stop(self) -> bool:
        return self.stopping.is_set()

    def stop(self) -> None:
        self.stopping.set()
        if not bus.is_amqp(self.url):
            bus.interrupt()

    def replay(self, body: str) -> None:
        """Process one dead-lettered message body again, through the inbox (``gridcase dlq replay``)."""
        self._process([_Stored(body)])

    # -- kombu ConsumerMixin -------------------------------------------------------------------------

    def get_consumers(self, Consumer, channel):
        bus.declare_topology(self.connection_in_use, self.delivery_limit)
        queue = bus.queue_for(self.subscription, self.url, self.delivery_limit)
        return [Consumer(queues=[queue], on_message=self._on_message, no_ack=False, prefetch_count=self.prefetch)]

    def on_connection_error(self, exc, interval):
        """kombu's errback while (re)connecting: names the node that failed (password hidden); kombu then
        tries the next node of the URL at once, and waits ``interval`` seconds only after a whole round."""
        self.ready.clear()
        connection = getattr(self, "connection_in_use", None) or self.connection
        log.warning("broker node unavailable; trying the next", consumer=self.name, node=connection.as_uri(),
                    retry_in=interval, error=repr(exc))

    def on_connection_revived(self):
        self._batch = []  # unacked deliveries of a lost channel were returned to the queue

    def consume(self, limit=None, timeout=None, safety_interval=None, **kwargs):
        """Drain deliveries into batches; between deliveries, wake every ``safety_interval`` seconds to
        check heartbeats, housekeeping and the stop flag: 0.5 s on RabbitMQ, 5 s on the in-memory bus,
        whose publishes and ``stop()`` wake the consumer anyway (each idle wake costs an embedded
        system CPU, see ``tests/e2e/test_idle.py``)."""
        if safety_interval is None:
            safety_interval = 0.5 if bus.is_amqp(self.url) else 5.0
        with self.consumer_context(**kwargs) as (connection, _channel, _consumers):
            self.ready.set()
            for _ in count():
                if self.should_stop:
                    break
                try:
                    connection.drain_events(timeout=FLUSH_AFTER if self._batch else safety_interval)
                except TimeoutError:
                    self._flush()
                    connection.heartbeat_check()
                    self._housekeeping()
                yield
            self._flush()
        self.ready.clear()

    def create_connection(self):
        connection = self.connection.clone()
        self.connection_in_use = connection
        return connection

    def _on_message(self, message) -> None:
        self._batch.append(message)
        if len(self._batch) >= self.batch_size:
            self._flush()

    # -- processing ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            if not self._retrying(self._process, batch):
                return  # stopping: unacked, redelivered to the next consumer
        except Exception:
            self._one_by_one(batch)
            return
        crash_point("consumer.after_commit")
        self._ack(batch)

    def _one_by_one(self, batch) -> None:
        for message in batch:
            try:
                if not self._retrying(self._process, [message]):
                    return
            except Exception as exc:
                self._failed(message, exc)
            else:
                message.ack()

    def _process(self, raw_messages) -> bool:
        messages = []
        for raw in raw_messages:
            envelope = Envelope.from_json(raw.body)
            if not self.subscription.takes(envelope.type):
                raise MessageError(f"{self.name} does not take {envelope.type}")
            messages.append(read_message(envelope))
        with self.uow as uow:
            fresh = inbox.claim(uow.connection, self.name, [m.envelope.id for m in messages])
            new = []
            for message in messages:  # a message twice in one batch is new only the first time
                if message.envelope.id in fresh:
                    fresh.discard(message.envelope.id)
                    new.append(message)
            if new:
                self.handle(new, uow)
            uow.commit()
        DUPLICATES.labels(self.name).inc(len(messages) - len(new))
        PROCESSED.labels(self.name).inc(len(new))
        if new:
            log.info("handled", consumer=self.name, count=len(new),
                     messages=[(m.envelope.id, m.envelope.correlation_id, logs.trace_id(m.envelope.traceparent))
                               for m in new[:20]])
        return True

    def _ack(self, batch) -> None:
        if bus.is_amqp(self.url):
            batch[-1].ack(multiple=True)
        else:
            for message in batch:
                message.ack()

    def _failed(self, message, exc: Exception) -> None:
        FAILED.labels(self.name).inc()
        log.error("message failed", consumer=self.name, message_id=message.properties.get("message_id"),
                  error=str(exc)[:500])
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
        with self.uow as uow:
            inbox.keep_dead_letter(uow.connection, consumer=self.name, message_id=message.properties.get("message_id"),
                                   routing_key=message.delivery_info.get("routing_key", ""), body=body,
                                   reason=str(exc))
            uow.commit()
        message.ack()

    def _housekeeping(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + 600
        try:
            with self.uow as uow:
                inbox.prune(uow.connection, self.name, datetime.now(UTC) - INBOX_RETENTION)
                uow.commit()
        except sa.exc.SQLAlchemyError:
            log.warning("inbox pruning failed", consumer=self.name, exc_info=True)

    def _holding(self, state) -> None:
        log.warning("holding messages", consumer=self.name, retry_in=round(state.upcoming_sleep, 2),
                    error=repr(state.outcome.exception())[:300])

    def _pause(self, seconds: float) -> None:
        """Sleep while serving the broker's heartbeats, so held messages stay ours."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            connection = getattr(self, "connection_in_use", None)
            if connection is not None and bus.is_amqp(self.url):
                connection.heartbeat_check()
            time.sleep(min(0.2, seconds))
