"""The broker topology, named in one place.

One durable topic exchange ``gridcase.events`` (routing key = message type), one queue per
consumer named ``gridcase.<consumer>``. On RabbitMQ the queues are quorum queues with a delivery
limit; a message rejected that many times goes to the fanout exchange ``gridcase.dead`` and its
queue ``gridcase.dead-letter``. The embedded mode uses the same names on kombu's ``memory://``.
"""
from __future__ import annotations

from dataclasses import dataclass

from kombu import Connection, Exchange, Queue, binding

from shared.messages.events import LIFECYCLE

EXCHANGE = Exchange("gridcase.events", type="topic", durable=True)
DEAD_EXCHANGE = Exchange("gridcase.dead", type="fanout", durable=True)
DEAD_QUEUE_NAME = "gridcase.dead-letter"


class PublishError(RuntimeError):
    """The broker did not take a message (nack, lost connection, timeout): it stays unsent."""


@dataclass(frozen=True)
class Subscription:
    """A consumer: its queue name and the message types it takes."""
    consumer: str
    service: str
    routing_keys: tuple[str, ...]

    @property
    def queue_name(self) -> str:
        return f"gridcase.{self.consumer}"


#: Every consumer in the system, so the relay can declare the whole topology before publishing
#: (a message published before its queue exists would be dropped as unroutable).
SUBSCRIPTIONS: dict[str, Subscription] = {s.consumer: s for s in (
    Subscription("dispatch.locate", "dispatch", ("case.reported",)),
    Subscription("dispatch.closed", "dispatch", ("case.closed", "case.reopened")),
    Subscription("dispatch.transfer", "dispatch", ("case.transferred",)),
    Subscription("escalation.open", "escalation", ("case.dispatched",)),
    Subscription("escalation.areas", "escalation", ("areas.published",)),
    Subscription("escalation.transfer", "escalation", ("case.transferred",)),
    Subscription("escalation.verify", "escalation", ("case.verified",)),
    Subscription("intake.status", "intake", ("case.dispatched", "case.transferred", *LIFECYCLE)),
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


def connect(url: str) -> Connection:
    if is_amqp(url):
        return Connection(url, heartbeat=30)
    # The in-memory transport polls its queues: every 100 ms keeps an idle `gridcase up` cheap (eight
    # consumers: 1.6 % of a core at 50 ms measured 3.5 % once the eighth came) and a hop well under a second.
    return Connection(url, transport_options={"polling_interval": 0.1})


def declare_topology(connection: Connection, delivery_limit: int) -> None:
    channel = connection.default_channel
    EXCHANGE.declare(channel=channel)
    DEAD_EXCHANGE.declare(channel=channel)
    dead_letter_queue(connection.as_uri()).declare(channel=channel)
    for subscription in SUBSCRIPTIONS.values():
        queue_for(subscription, connection.as_uri(), delivery_limit).declare(channel=channel)
