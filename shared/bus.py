"""The broker topology, named in one place.

One durable topic exchange ``gridcase.events`` (routing key = message type), one queue per
consumer named ``gridcase.<consumer>``. On RabbitMQ the queues are quorum queues with a delivery
limit; a message rejected that many times goes to the fanout exchange ``gridcase.dead`` and its
queue ``gridcase.dead-letter``. The embedded mode uses the same names on kombu's ``memory://``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from queue import Empty

from kombu import Connection, Exchange, Queue, binding
from kombu.transport import memory

from shared.messages.events import LIFECYCLE

EXCHANGE = Exchange("gridcase.events", type="topic", durable=True)
DEAD_EXCHANGE = Exchange("gridcase.dead", type="fanout", durable=True)
DEAD_QUEUE_NAME = "gridcase.dead-letter"


class PublishError(RuntimeError):
    """The broker did not take a message (nack, lost connection, timeout): it stays unsent."""


@dataclass(frozen=True)
class Subscription:
    """A consumer: its queue name and the message types it takes. ``retired`` are types it took
    before: declaring the topology unbinds them (a queue keeps its bindings across deploys), and one
    still queued from before is handled as it was."""
    consumer: str
    service: str
    routing_keys: tuple[str, ...]
    retired: tuple[str, ...] = ()

    @property
    def queue_name(self) -> str:
        return f"gridcase.{self.consumer}"

    def takes(self, message_type: str) -> bool:
        return message_type in self.routing_keys or message_type in self.retired


#: Every consumer in the system, so the relay can declare the whole topology before publishing
#: (a message published before its queue exists would be dropped as unroutable).
SUBSCRIPTIONS: dict[str, Subscription] = {s.consumer: s for s in (
    Subscription("dispatch.locate", "dispatch", ("case.reported",)),
    Subscription("dispatch.closed", "dispatch", ("case.closed", "case.reopened", "case.refused", "case.voided",
                                                 "case.merged")),
    Subscription("dispatch.transfer", "dispatch", ("case.transferred",)),
    Subscription("escalation.open", "escalation", ("case.dispatched",)),
    Subscription("escalation.areas", "escalation", ("areas.published",)),
    Subscription("escalation.transfer", "escalation", ("case.transferred",)),
    Subscription("escalation.verify", "escalation", ("case.verified",)),
    Subscription("escalation.departments", "escalation", ("departments.published",)),
    Subscription("intake.departments", "intake", ("departments.published",)),
    # case.opened carries the area scope that intake once read from case.dispatched: one delivery less per case.
    Subscription("intake.status", "intake", ("case.transferred", *LIFECYCLE), retired=("case.dispatched",)),
)}


def is_amqp(url: str) -> bool:
    return url.startswith("amqp") or url.startswith("pyamqp")


def dead_letter_queue(url: str) -> Queue:
    args = {"x-queue-type": "quorum"} if is_amqp(url) else {}
    return Queue(DEAD_QUEUE_NAME, DEAD_EXCHANGE, durable=True, queue_arguments=args)


def queue_for(subscription: Subscription, url: str, delivery_limit: int) -> Queue:
    args = {}
    if is_amqp(url):
        args = {"x-queue-type": "quorum", "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": DEAD_EXCHANGE.name}
    return Queue(subscription.queue_name, durable=True, queue_arguments=args,
                 bindings=[binding(EXCHANGE, routing_key=key) for key in subscription.routing_keys])


class _Published:
    """How many messages the in-memory bus has taken (and how many times waiting consumers were
    interrupted), with a condition to wait for the next one."""
    condition = threading.Condition()
    count = 0
    interrupts = 0

    @classmethod
    def bump(cls) -> None:
        with cls.condition:
            cls.count += 1
            cls.condition.notify_all()


def interrupt() -> None:
    """Make every consumer waiting on the in-memory bus return from ``drain_events`` (a timeout), so
    a stopping consumer sees its flag at once instead of at the end of its wait."""
    with _Published.condition:
        _Published.interrupts += 1
        _Published.condition.notify_all()


class _MemoryChannel(memory.Channel):
    def _put(self, queue, message, **kwargs):
        super()._put(queue, message, **kwargs)
        _Published.bump()

    def _put_fanout(self, exchange, message, routing_key=None, **kwargs):
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        _Published.bump()


class MemoryTransport(memory.Transport):
    """kombu's ``memory://`` transport, woken by a publish instead of polling its queues.

    kombu's own polls every ``polling_interval`` in each consumer thread: eight idle consumers polling
    every 100 ms cost ~2.5 % of a core (measured with ``/proc/PID/task/*/stat``), and a longer interval
    adds that much to every hop. Here a consumer waits on a condition that each publish notifies, so a
    hop costs no polling delay and an idle consumer wakes only when its ``drain_events`` timeout ends
    or ``interrupt()`` is called.
    """

    Channel = _MemoryChannel

    def drain_events(self, connection, timeout=None):
        started = time.monotonic()
        interrupts = _Published.interrupts
        while True:
            seen = _Published.count
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                left = None if timeout is None else timeout - (time.monotonic() - started)
                if (left is not None and left <= 0) or _Published.interrupts != interrupts:
                    raise TimeoutError() from None
                with _Published.condition:
                    _Published.condition.wait_for(
                        lambda seen=seen: _Published.count != seen or _Published.interrupts != interrupts,
                        timeout=left)


def connect(url: str) -> Connection:
    if is_amqp(url):
        return Connection(url, heartbeat=30)
    return Connection(url, transport=MemoryTransport)


def declare_topology(connection: Connection, delivery_limit: int) -> None:
    channel = connection.default_channel
    EXCHANGE.declare(channel=channel)
    DEAD_EXCHANGE.declare(channel=channel)
    dead_letter_queue(connection.as_uri()).declare(channel=channel)
    for subscription in SUBSCRIPTIONS.values():
        queue = queue_for(subscription, connection.as_uri(), delivery_limit)
        queue.declare(channel=channel)
        for key in subscription.retired:
            queue.unbind_from(EXCHANGE, routing_key=key, channel=channel)
