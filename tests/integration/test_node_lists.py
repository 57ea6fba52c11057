"""Broker and database URLs listing several nodes, against the real servers: a dead node is skipped and
named, a nack or a lost connection leaves the rows unsent and a fresh connection to the next node sends
them, and a database URL with a dead host first reaches the live one with gridcase's client settings.

A broker "node" that can be cut is a TCP forwarder on loopback in front of the test's RabbitMQ; a dead node
is a port held bound but not listening (connections to it are refused, and no other process can take it)."""
from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from kombu import Connection

from harness.processes import GRIDCASE, Processes, wait_for
from harness.servers import queue_depth
from shared import bus
from shared.config import redact
from shared.db import STATEMENT_TIMEOUT_MS, make_engine
from shared.relay import Relay, publisher_factory
from shared.runtime import check_broker
from tests.support.messaging import fill_outbox, messaging_engine, seen_counts, start_consumer, unsent

QUEUE = "gridcase.dispatch.locate"


@contextlib.contextmanager
def dead_node():
    """An AMQP URL whose port refuses connections (held bound, never listening)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"amqp://guest:guest@127.0.0.1:{held.getsockname()[1]}/%2F"


class Forwarder:
    """A broker node that can be cut: forwards 127.0.0.1:<port> to the real broker. ``cut_after(n)`` drops
    every connection once n more bytes went from clients to the broker, and then refuses new ones."""

    def __init__(self, target: str):
        self.target = (urlsplit(target).hostname, urlsplit(target).port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.sockets: list[socket.socket] = []
        self.budget: int | None = None
        self.held: socket.socket | None = None
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        with self.lock:
            self.budget = n

    def cut(self) -> None:
        with self.lock:
            if self.held is not None:
                return
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.held = socket.socket()  # keep the port: refused from now on
            self.held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.held.bind(("127.0.0.1", self.port))
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self.cut()
        self.held.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted:
                    with self.lock:
                        if self.budget is not None:
                            self.budget -= len(data)
                    if self.budget is not None and self.budget < 0:
                        self.cut()
                        return
                sink.sendall(data)
        except OSError:
            pass


@pytest.fixture
def forwarder(broker_url):
    node = Forwarder(broker_url)
    yield node
    node.close()


def consume_all(engine, url: str, n: int) -> None:
    consumer, _ = start_consumer(engine, url)
    try:
        wait_for(lambda: seen_counts(engine)[1] == n, timeout=60, message=f"{n} distinct messages applied")
        wait_for(lambda: queue_depth(url.split(";")[-1], QUEUE) == 0, timeout=30, message="queue empty")
        assert seen_counts(engine) == (n, n), "each message applied once"
    finally:
        consumer.stop()


def run_relay(relay: Relay) -> threading.Thread:
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    return thread


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_dead_node_listed_first_is_named_and_relay_and_consumer_use_the_live_one(broker_url, postgres_url,
                                                                                    capfd, caplog):
    engine = messaging_engine(postgres_url)
    fill_outbox(engine, 500)
    with dead_node() as dead:
        url = f"{dead};{broker_url}"
        relay = Relay(engine, "test", publisher_factory(url, 5))
        thread = run_relay(relay)
        try:
            wait_for(lambda: unsent(engine) == 0, timeout=30, message="outbox drained")
            assert relay.publisher.node == broker_url
            consume_all(engine, url, 500)
        finally:
            relay.stop()
            thread.join(10)
    captured = capfd.readouterr()  # structlog prints, or goes through logging once configured
    logged = captured.out + captured.err + caplog.text
    assert "broker node down" in logged and redact(dead) in logged
    assert "guest:guest@" not in logged.replace(broker_url, "")  # passwords hidden


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_connection_lost_mid_batch_leaves_every_row_unsent_and_the_next_node_sends_them(
        broker_url, postgres_url, forwarder):
    engine = messaging_engine(postgres_url)
    fill_outbox(engine, 2000)
    relay = Relay(engine, "test", publisher_factory(f"{forwarder.url};{broker_url}", 5), batch_size=2000)
    relay.publisher = relay.publisher_factory()
    assert relay.publisher.node == forwarder.url
    forwarder.cut_after(100_000)  # about a tenth of the batch reaches the broker, then the node is gone
    with pytest.raises(bus.PublishError, match="lost"):
        relay.run_once()
    assert unsent(engine) == 2000, "no row is marked sent unless every confirm came"
    assert queue_depth(broker_url, QUEUE) > 0, "some of the batch did reach the broker"
    thread = run_relay(relay)  # the relay's own loop: drop the publisher, connect to the next node
    try:
        wait_for(lambda: unsent(engine) == 0, timeout=30, message="outbox drained through the next node")
        assert relay.publisher.node == broker_url
        consume_all(engine, broker_url, 2000)  # what reached the broker twice is absorbed by the inbox
    finally:
        relay.stop()
        thread.join(10)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_nacked_batch_stays_unsent_and_a_fresh_connection_to_the_next_node_sends_it(
        broker_url, postgres_url, forwarder):
    engine = messaging_engine(postgres_url)
    fill_outbox(engine, 300)
    relay = Relay(engine, "test", publisher_factory(f"{forwarder.url};{broker_url}", 5), batch_size=300)
    relay.publisher = relay.publisher_factory()
    with Connection(broker_url) as connection:  # a full queue that refuses more: the broker nacks
        channel = connection.channel()
        channel.queue_declare("test.refusing", durable=True, auto_delete=False,
                              arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        channel.queue_bind("test.refusing", bus.EXCHANGE.name, "case.reported")
        try:
            with pytest.raises(bus.PublishError, match="nacked"):
                relay.run_once()
            assert unsent(engine) == 300
        finally:
            channel.queue_delete("test.refusing")
    thread = run_relay(relay)
    try:
        wait_for(lambda: unsent(engine) == 0, timeout=30, message="outbox drained")
        assert relay.publisher.node == broker_url, "the publisher after the nack connected to the next node"
        consume_all(engine, broker_url, 300)
    finally:
        relay.stop()
        thread.join(10)


@pytest.mark.rabbitmq
def test_readiness_holds_while_one_node_answers_and_names_every_node_when_none_does(broker_url):
    with dead_node() as first, dead_node() as second:
        check_broker(f"{first};{broker_url};{second}")()  # one live node: ready
        with pytest.raises(ConnectionError, match="no broker node answers") as raised:
            check_broker(f"{first};{second}")()
    assert redact(first) in str(raised.value) and redact(second) in str(raised.value)
    assert "guest:guest" not in str(raised.value)


def test_with_every_broker_node_down_the_api_starts_names_them_and_readyz_answers_503(tmp_path):
    processes = Processes(tmp_path)
    with dead_node() as first, dead_node() as second:
        env = {"GRIDCASE_BROKER_URL": f"{first};{second}", "GRIDCASE_SECRET": "nodes-" + "x" * 40}
        base = processes.serve("serve-intake", GRIDCASE + ["serve", "intake", "--workers", "1", "--data-dir",
                                                            str(tmp_path)], env)
        try:
            wait_for(lambda: _status(f"{base}/intake/healthz") == 200, timeout=60, message="intake serving",
                     watch=processes)
            response = requests.get(f"{base}/intake/readyz", timeout=30)
            assert response.status_code == 503
            assert [e["field"] for e in response.json()["errors"]] == ["broker"]
            logged = processes.output("serve-intake")
            assert "broker node down" in logged
            assert redact(first) in logged and redact(second) in logged
        finally:
            processes.stop_all()


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


@pytest.mark.postgres
def test_a_database_url_with_a_dead_host_first_reaches_the_live_one_with_gridcase_client_settings(postgres_url):
    live = urlsplit(postgres_url)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        dead = held.getsockname()[1]
        url = (f"postgresql+psycopg://{live.username}@/{live.path.lstrip('/')}"
               f"?host=127.0.0.1:{dead}&host={live.hostname}:{live.port}")
        engine = make_engine(url)
        try:
            with engine.connect() as db:
                info = db.connection.driver_connection.info
                assert info.port == live.port
                assert db.execute(sa.text("SHOW statement_timeout")).scalar() == f"{STATEMENT_TIMEOUT_MS // 60000}min"
                parameters = info.get_parameters()
                assert parameters["target_session_attrs"] == "read-write"
                assert parameters["keepalives"] == "1" and parameters["connect_timeout"] == "5"
                assert db.execute(sa.text("SELECT NOT pg_is_in_recovery()")).scalar()
        finally:
            engine.dispose()
