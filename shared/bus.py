"""The broker topology, named in one place.

One durable topic exchange ``gridcase.events`` (routing key = message type), one queue per
consumer named ``gridcase.<consumer>``. On RabbitMQ the queues are quorum queues with a delivery
limit; a message rejected that many times goes to the fanout exchange ``gridcase.dead`` and its
queue ``gridcase.dead-letter``. The embedded mode uses the same names on kombu's ``memory://``.

The broker URL may list several nodes of one RabbitMQ cluster (``amqp://a;amqp://b;amqp://c``, see
``shared.config.broker_nodes``): kombu connections fail over along the list by themselves, the pika relay
goes through it in turn (``shared.pika_publisher``), and ``probe`` tells which nodes answer. Connections
beat every ``HEARTBEAT`` seconds, so a node that vanishes without closing its sockets (a cut network, a
frozen host) is noticed within two beats.

The dead-letter queue must never drop what it holds: on RabbitMQ 4.0 and later a quorum queue declared
without a delivery limit gets 20, and up to 4.2 every return counts — each ``gridcase dlq list`` hands the
letters back, so the 21st listing would drop them. It is declared with ``x-delivery-limit: -1``
(unlimited) on 4.x; on 3.x, where a quorum queue has no limit unless given one and ``-1`` would drop a
letter at its first return, without. A queue declared before keeps its arguments (RabbitMQ refuses to
change them): ``declare_topology`` then leaves it as it is and says so, and the policy in
``deploy/rabbitmq/definitions.json`` lifts the limit (``deploy/README.md``).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from queue import Empty

from amqp.exceptions import PreconditionFailed
from kombu import Connection, Exchange, Queue, binding
from kombu.transport import memory

from shared import logs
from shared.config import broker_nodes, redact
from shared.messages.events import LIFECYCLE

log = logs.get("gridcase.bus")
#: Seconds between AMQP heartbeats (RabbitMQ drops a connection after two missed ones).
HEARTBEAT = 10
#: Seconds to wait for one node to accept a connection before trying the next.
CONNECT_TIMEOUT = 5

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


def dead_letter_queue(url: str, server_version: str | None = None) -> Queue:
    """The dead-letter queue; on RabbitMQ a quorum queue, with no delivery limit on 4.x (``server_version``,
    e.g. ``"4.1.0"``, as the broker announces it; ``None``: unknown, declared as for 3.x)."""
    args = {}
    if is_amqp(url):
        args = {"x-queue-type": "quorum"}
        if major_version(server_version) >= 4:
            args["x-delivery-limit"] = -1
    return Queue(DEAD_QUEUE_NAME, DEAD_EXCHANGE, durable=True, queue_arguments=args)


def major_version(version: str | bytes | None) -> int:
    """``"4.1.3"`` → 4; 0 when unknown."""
    if isinstance(version, bytes):
        version = version.decode("ascii", "replace")
    head = (version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def server_version(connection: Connection) -> str | None:
    """The RabbitMQ version a connected kombu connection's broker announced (``None`` in memory)."""
    properties = getattr(connection.connection, "server_properties", None) or {}
    version = properties.get("version")
    return version.decode("ascii", "replace") if isinstance(version, bytes) else version


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
    """A kombu connection (not yet connected) to the broker; a list of nodes fails over round-robin."""
    if is_amqp(url):
        return Connection(url, heartbeat=HEARTBEAT, connect_timeout=CONNECT_TIMEOUT)
    return Connection(url, transport=MemoryTransport)


_node_down: dict[str, bool] = {}
_node_lock = threading.Lock()


def node_state(node: str, error: BaseException | str | None) -> None:
    """Record whether ``node`` answered; a node that stops answering is logged once as down (naming it,
    password hidden), and once again when it is back."""
    down = error is not None
    with _node_lock:
        was_down = _node_down.get(node)
        _node_down[node] = down
    if down and not was_down:
        log.warning("broker node down", node=redact(node), error=str(error)[:300])
    elif not down and was_down:
        log.info("broker node back", node=redact(node))


def probe(url: str, timeout: float = 2.0) -> dict[str, str | None]:
    """Try each node of ``url`` once: node → ``None`` when it accepted an AMQP connection, else why not.
    Down nodes are logged (``node_state``). In memory: ``{url: None}``."""
    if not is_amqp(url):
        return {url: None}
    out = {}
    for node in broker_nodes(url):
        try:
            with Connection(node, connect_timeout=timeout) as connection:
                connection.connect()
            out[node] = None
        except Exception as exc:  # any failure to connect means: not usable now
            out[node] = f"{type(exc).__name__}: {exc}"
        node_state(node, out[node])
    return out


def declare_topology(connection: Connection, delivery_limit: int) -> None:
    channel = connection.default_channel
    EXCHANGE.declare(channel=channel)
    DEAD_EXCHANGE.declare(channel=channel)
    _declare_dead_letter_queue(connection)
    for subscription in SUBSCRIPTIONS.values():
        queue = queue_for(subscription, connection.as_uri(), delivery_limit)
        queue.declare(channel=channel)
        for key in subscription.retired:
            queue.unbind_from(EXCHANGE, routing_key=key, channel=channel)


def _declare_dead_letter_queue(connection: Connection) -> None:
    url = connection.as_uri()
    version = server_version(connection) if is_amqp(url) else None
    queue = dead_letter_queue(url, version)
    if not is_amqp(url):
        queue.declare(channel=connection.default_channel)
        return
    channel = connection.channel()  # its own: a refused declaration closes the channel it was made on
    try:
        queue.declare(channel=channel)
    except PreconditionFailed as exc:
        # Declared before with other arguments (before 4.x: without a delivery limit), and RabbitMQ keeps a
        # queue's arguments. It is used as it is; the policy in deploy/rabbitmq/definitions.json lifts its limit.
        log.warning("the dead-letter queue was declared before with other arguments and is kept as it is; on "
                    "RabbitMQ 4.x apply the delivery-limit policy of deploy/rabbitmq/definitions.json, or its "
                    "letters are dropped after 20 deliveries", queue=DEAD_QUEUE_NAME, server_version=version,
                    error=str(exc)[:200])
    else:
        channel.close()
