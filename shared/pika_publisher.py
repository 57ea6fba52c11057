"""Pipelined publisher confirms on RabbitMQ with pika's SelectConnection.

A batch is published in one go and the ioloop runs until the broker has acked every delivery tag
(acks may cover many tags at once with ``multiple``). A nack, a closed connection or a timeout
raises, and the relay leaves the rows unsent; it then drops this publisher and makes a fresh one,
which connects to the next node of the broker URL that answers (``NodeRing``), so the rows go out
again through a live node of the cluster.
"""
from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit, urlunsplit

import pika
from pika.adapters.select_connection import SelectConnection
from prometheus_client import Counter

from shared import bus
from shared.config import broker_nodes, redact

log = logging.getLogger("gridcase.relay")
UNROUTABLE = Counter("gridcase_outbox_unroutable_total", "Published messages no queue was bound for", ["type"])


def pika_url(url: str) -> str:
    """kombu writes the default vhost as ``//``; pika reads that as an empty vhost and wants ``/%2F``."""
    parts = urlsplit(url)
    vhost = parts.path[1:] if parts.path.startswith("/") else parts.path
    if vhost in ("", "/"):
        vhost = "%2F"
    return urlunsplit((parts.scheme.replace("pyamqp", "amqp"), parts.netloc, "/" + vhost, parts.query, ""))


class NodeRing:
    """The nodes of a broker URL in the order a fresh connection tries them: starting after the node the
    last connection used, so that a publisher dropped after a nack or a lost connection is replaced by one
    on another node. Shared by the publishers one relay makes over its life; thread-safe."""

    def __init__(self, url: str):
        self.nodes = broker_nodes(url)
        self._next = 0
        self._lock = threading.Lock()

    def order(self) -> list[str]:
        with self._lock:
            start = self._next
        return [self.nodes[(start + i) % len(self.nodes)] for i in range(len(self.nodes))]

    def used(self, node: str) -> None:
        with self._lock:
            self._next = (self.nodes.index(node) + 1) % len(self.nodes)


class PikaConfirmPublisher:
    """Publishes outbox rows with pipelined confirms on the first node of ``ring`` (default: the nodes
    of ``url`` in order) that accepts a connection; every node refusing raises ``bus.PublishError``.
    ``timeout``: seconds a batch may wait for its confirms; ``connect_timeout``: seconds per node."""

    def __init__(self, url: str, delivery_limit: int, *, timeout: float = 30.0,
                 connect_timeout: float = bus.CONNECT_TIMEOUT, ring: NodeRing | None = None):
        self.timeout = timeout
        self.node: str | None = None
        failures = []
        for node in (ring or NodeRing(url)).order():
            try:
                self._open(node, connect_timeout)
                with bus.connect(node) as kombu_connection:  # topology is declared by kombu, in one place
                    bus.declare_topology(kombu_connection, delivery_limit)
            except Exception as exc:  # refused, timed out, closed while declaring: try the next node
                failures.append(f"{redact(node)}: {exc}")
                bus.node_state(node, exc)
                self.close()
                continue
            bus.node_state(node, None)
            if ring is not None:
                ring.used(node)
            self.node = node
            return
        raise bus.PublishError("no broker node accepts a connection: " + "; ".join(failures))

    def _open(self, node: str, connect_timeout: float) -> None:
        self.channel = None
        self.error: str | None = None
        self._outstanding: set[int] = set()
        self._next_tag = 1
        self._waiting_for = None
        parameters = pika.URLParameters(pika_url(node))
        parameters.heartbeat = bus.HEARTBEAT
        parameters.connection_attempts = 1
        parameters.socket_timeout = connect_timeout
        parameters.stack_timeout = connect_timeout
        parameters.blocked_connection_timeout = self.timeout
        self.connection = SelectConnection(
            parameters, on_open_callback=self._on_open, on_open_error_callback=self._on_failure,
            on_close_callback=self._on_failure)
        self._run_until(lambda: self.channel is not None, "connecting", connect_timeout)

    def publish(self, rows) -> None:
        for row in rows:
            properties = pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                              content_encoding="utf-8", message_id=row.message_id)
            self.channel.basic_publish(bus.EXCHANGE.name, row.type, row.body.encode(), properties,
                                       mandatory=True)
            self._outstanding.add(self._next_tag)
            self._next_tag += 1
        self._run_until(lambda: not self._outstanding, "waiting for confirms")

    def heartbeat(self) -> None:
        """Serve the connection between batches: heartbeats in and out, a close from the broker."""
        self.connection.ioloop.call_later(0, self.connection.ioloop.stop)
        self.connection.ioloop.start()
        self._raise_error()

    def close(self) -> None:
        """Close the connection (waiting up to 2 s for the broker's answer) and free its ioloop."""
        connection = getattr(self, "connection", None)
        if connection is None:
            return
        if connection.is_open:
            connection.close()
            connection.ioloop.call_later(2, connection.ioloop.stop)
            connection.ioloop.start()
        connection.ioloop.close()
        self.connection = None

    # -- callbacks -------------------------------------------------------------------------------

    def _on_open(self, connection):
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel):
        channel.add_on_close_callback(self._on_failure)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm,
                                 callback=lambda _frame: self._set_channel(channel))

    def _set_channel(self, channel):
        self.channel = channel
        self._check()

    def _on_confirm(self, frame):
        method = frame.method
        tags = ({t for t in self._outstanding if t <= method.delivery_tag} if method.multiple
                else {method.delivery_tag})
        if isinstance(method, pika.spec.Basic.Nack):
            self.error = f"broker nacked delivery {sorted(tags)[:3]}"
        self._outstanding -= tags
        self._check()

    def _on_return(self, _channel, method, properties, _body):
        # The relay declared every subscriber's queue before publishing, so a returned message is
        # a type nobody subscribes to (yet). It is counted and logged, not retried forever.
        UNROUTABLE.labels(method.routing_key).inc()
        log.warning("no queue is bound for %s (message %s)", method.routing_key, properties.message_id)

    def _on_failure(self, *args):
        self.error = f"connection to broker lost: {args[-1] if args else ''}"
        self._check(force=True)

    # -- the loop ----------------------------------------------------------------------------------

    def _check(self, force: bool = False):
        if self._waiting_for is not None and (force or self.error or self._waiting_for()):
            self.connection.ioloop.stop()

    def _run_until(self, condition, what: str, timeout: float | None = None) -> None:
        if not condition() and not self.error:
            self._waiting_for = condition
            timer = self.connection.ioloop.call_later(timeout or self.timeout, self._on_timeout(what))
            self.connection.ioloop.start()
            self.connection.ioloop.remove_timeout(timer)
            self._waiting_for = None
        self._raise_error()

    def _on_timeout(self, what):
        def fire():
            self.error = self.error or f"timed out {what}"
            self.connection.ioloop.stop()
        return fire

    def _raise_error(self):
        if self.error:
            raise bus.PublishError(self.error)
