"""Outbox → relay → broker → inbox, on SQLite + the in-memory bus and on PostgreSQL + RabbitMQ."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kombu import Connection, Producer

from harness.processes import wait_for
from harness.servers import queue_depth
from shared import bus
from shared.relay import Relay, publisher_factory
from tests.support.messaging import fill_outbox, messaging_engine, seen_counts, start_consumer, unsent

ROOT = Path(__file__).resolve().parents[2]


def start_relay(engine, url, **options):
    relay = Relay(engine, "test", publisher_factory(url, 5), **options)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    return relay, thread


def stop(*workers):
    for worker in workers:
        worker.stop()


def test_every_outbox_row_reaches_the_consumer_once_on_sqlite_and_the_memory_bus(tmp_path):
    url = f"memory://{tmp_path.name}"
    engine = messaging_engine(f"sqlite:///{tmp_path}/svc.db")
    with Connection(url) as connection:
        bus.declare_topology(connection, 5)
        connection.default_channel.queue_purge(bus.SUBSCRIPTIONS["dispatch.locate"].queue_name)
    fill_outbox(engine, 300)
    consumer, _ = start_consumer(engine, url)
    relay, _ = start_relay(engine, url)
    try:
        wait_for(lambda: seen_counts(engine)[0] == 300, message="300 messages consumed")
        assert seen_counts(engine) == (300, 300)
        assert unsent(engine) == 0
    finally:
        stop(relay, consumer)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_the_relay_publishes_with_confirms_and_the_inbox_applies_each_message_once(broker_url, postgres_url):
    engine = messaging_engine(postgres_url)
    fill_outbox(engine, 3000)
    relay, _ = start_relay(engine, broker_url)
    consumer, _ = start_consumer(engine, broker_url)
    try:
        wait_for(lambda: seen_counts(engine)[0] >= 3000, timeout=60, message="3000 consumed")
        wait_for(lambda: unsent(engine) == 0, message="outbox drained")
        assert seen_counts(engine) == (3000, 3000)
        wait_for(lambda: queue_depth(broker_url, "gridcase.dispatch.locate") == 0, message="queue empty")
    finally:
        stop(relay, consumer)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_commit_in_another_process_wakes_the_relay_at_once(broker_url, postgres_url):
    """A writer with no relay of its own (here: an engine on another URL of the same database, as the API
    under gunicorn is another process) notifies the relay on commit: with a poll of 60 s, only the
    notification can publish its message within the test's wait, again and again."""
    from datetime import UTC, datetime

    from shared.messages import events
    from shared.uow import relay_elsewhere
    from tests.support.messaging import unit_of_work

    engine = messaging_engine(postgres_url)
    writer = messaging_engine(postgres_url + ("&" if "?" in postgres_url else "?") + "application_name=writer")
    relay, _ = start_relay(engine, broker_url, poll_interval=60.0, idle_poll=60.0)
    try:
        assert relay_elsewhere(writer) and not relay_elsewhere(engine)
        time.sleep(0.5)  # the relay has found nothing and sleeps its 60 s
        for n in range(3):
            with unit_of_work(writer) as uow:
                uow.add(events.CaseReported(case_id=f"woken-{n}", number=str(n), category="other", severity="normal",
                                            description="x", location=events.Location(1.0, 2.0), reporter="t",
                                            reported_at=datetime.now(UTC)))
                uow.commit()
            wait_for(lambda: unsent(engine) == 0, timeout=10, message=f"message {n} published without a poll")
    finally:
        stop(relay)
        writer.dispose()


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_relay_killed_between_confirm_and_mark_sent_duplicates_and_the_inbox_absorbs_it(broker_url,
                                                                                        postgres_url):
    engine = messaging_engine(postgres_url)
    fill_outbox(engine, 500)
    crashing = subprocess.run([sys.executable, "-m", "tests.support.relay_process", postgres_url, broker_url, "200"],
                              cwd=ROOT, env={**os.environ, "GRIDCASE_CRASH_AT": "relay.after_confirm"},
                              timeout=60, capture_output=True)
    assert crashing.returncode == -signal.SIGKILL
    assert unsent(engine) == 500, "the killed relay marked nothing sent"
    assert queue_depth(broker_url, "gridcase.dispatch.locate") == 200, "yet the broker confirmed one batch"
    consumer, _ = start_consumer(engine, broker_url)
    relay, _ = start_relay(engine, broker_url, batch_size=200)
    try:
        wait_for(lambda: unsent(engine) == 0, timeout=30, message="outbox drained")
        wait_for(lambda: seen_counts(engine)[0] == 500, timeout=30, message="500 applied")
        wait_for(lambda: queue_depth(broker_url, "gridcase.dispatch.locate") == 0, message="queue empty")
        assert seen_counts(engine) == (500, 500), "the 200 duplicates were absorbed by the inbox"
    finally:
        stop(relay, consumer)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_broker_restart_in_the_middle_of_relaying_loses_nothing(broker_url, postgres_url):
    """Reports keep arriving in the outbox while RabbitMQ restarts: the relay is publishing when it dies."""
    base = os.environ.get("GRIDCASE_TEST_RABBITMQ_BASE")
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail("GRIDCASE_TEST_RABBITMQ_BASE is needed to restart the broker")
        pytest.skip("broker not started by deploy/local/rabbitmq.sh: cannot restart it")
    engine = messaging_engine(postgres_url)
    relay, _ = start_relay(engine, broker_url, batch_size=100)
    consumer, _ = start_consumer(engine, broker_url)
    written = []

    def keep_writing():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            written.extend(fill_outbox(engine, 50, start=len(written)))
            time.sleep(0.02)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        wait_for(lambda: seen_counts(engine)[0] > 0, timeout=30, message="messages flowing")
        subprocess.run([str(ROOT / "deploy/local/rabbitmq.sh"), "restart", base], check=True, timeout=180,
                       stdout=subprocess.DEVNULL)
        writer.join()
        assert len(written) > 1000
        wait_for(lambda: unsent(engine) == 0, timeout=120, message="outbox drained after the restart")
        wait_for(lambda: seen_counts(engine)[1] == len(written), timeout=120, message="every case applied")
        assert seen_counts(engine) == (len(written), len(written))
    finally:
        writer.join()
        stop(relay, consumer)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_malformed_message_ends_in_the_dead_letter_queue_after_the_delivery_limit(broker_url, postgres_url):
    engine = messaging_engine(postgres_url)
    consumer, _ = start_consumer(engine, broker_url, delivery_limit=5)
    try:
        with Connection(broker_url) as connection:
            producer = Producer(connection.default_channel, exchange=bus.EXCHANGE)
            producer.publish(b"{not json", routing_key="case.reported", content_type="application/json",
                             content_encoding="utf-8", message_id="poison-1")
            producer.publish(json.dumps({"id": "0b5c3d5e-6f1a-4b8e-9a55-9e1c6b1f2a33", "type": "case.reported",
                                         "version": 1, "occurred_at": "2026-01-01T00:00:00Z",
                                         "correlation_id": "x", "producer": "t", "payload": {"case_id": 1}}),
                             routing_key="case.reported", content_type="application/json",
                             content_encoding="utf-8", message_id="poison-2")
        fill_outbox(engine, 50)
        relay, _ = start_relay(engine, broker_url)
        wait_for(lambda: queue_depth(broker_url, bus.DEAD_QUEUE_NAME) == 2, timeout=30, message="2 dead letters")
        wait_for(lambda: seen_counts(engine)[0] == 50, message="good messages still flow")
        with Connection(broker_url) as connection:
            channel = connection.default_channel
            dead = [channel.basic_get(bus.DEAD_QUEUE_NAME, no_ack=True) for _ in range(2)]
        assert sorted(m.properties["message_id"] for m in dead) == ["poison-1", "poison-2"]
        relay.stop()
    finally:
        consumer.stop()


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_dead_letters_are_listed_and_replayed_once_the_cause_is_fixed(broker_url, postgres_url):
    from gridcase.dlq import list_dead, replay
    from shared.config import Settings
    from tests.support import messaging

    engine = messaging_engine(postgres_url)
    broken = {"on": True}

    def fragile(message, uow):
        if broken["on"] and message.case_id == "case-000001":
            raise RuntimeError("a bug")
        messaging.record(message, uow)

    consumer = messaging.consumer_worker(engine, broker_url, fragile, delivery_limit=5)
    threading.Thread(target=consumer.run, daemon=True).start()
    assert consumer.ready.wait(10)
    fill_outbox(engine, 3)
    relay, _ = start_relay(engine, broker_url)
    try:
        wait_for(lambda: queue_depth(broker_url, bus.DEAD_QUEUE_NAME) == 1, timeout=30, message="1 dead letter")
        assert seen_counts(engine) == (2, 2)
        settings = Settings(broker_url=broker_url, secret="x")
        [letter] = list_dead(settings)
        assert letter.routing_key == "case.reported" and "case-000001" in letter.body
        assert queue_depth(broker_url, bus.DEAD_QUEUE_NAME) == 1, "listing leaves the letter where it was"
        broken["on"] = False
        assert replay(settings) == 1
        wait_for(lambda: seen_counts(engine)[0] == 3, message="the replayed message applied")
        assert seen_counts(engine) == (3, 3)
        assert queue_depth(broker_url, bus.DEAD_QUEUE_NAME) == 0
    finally:
        stop(relay, consumer)


def test_housekeeping_forgets_old_sent_rows_and_old_inbox_entries_but_nothing_unsent(tmp_path):
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from shared import inbox as inbox_module
    from shared import outbox as outbox_module
    from shared.inbox import inbox
    from shared.outbox import outbox

    engine = messaging_engine(f"sqlite:///{tmp_path}/svc.db")
    fill_outbox(engine, 4)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    with engine.begin() as db:
        db.execute(outbox.update().where(outbox.c.id <= 2).values(sent_at=long_ago))
        db.execute(outbox.update().where(outbox.c.id == 3).values(sent_at=datetime.now(UTC)))
        db.execute(inbox.insert(), [{"consumer": "c", "message_id": "old", "processed_at": long_ago},
                                    {"consumer": "c", "message_id": "new", "processed_at": datetime.now(UTC)}])
    now = datetime.now(UTC)
    with engine.begin() as db:
        outbox_module.prune(db, now - timedelta(days=1))
        inbox_module.prune(db, "c", now - timedelta(days=7))
    with engine.connect() as db:
        assert db.execute(sa.select(outbox.c.id).order_by(outbox.c.id)).scalars().all() == [3, 4]
        assert db.execute(sa.select(inbox.c.message_id)).scalars().all() == ["new"]


def test_an_embedded_dead_letter_is_replayed_through_its_consumer_and_then_forgotten(tmp_path):
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from gridcase.cities import ensure_city
    from gridcase.dlq import list_dead, replay
    from services.dispatch import bootstrap, store
    from services.dispatch.citygen import generate_city, hierarchy_from_city
    from shared import inbox
    from shared.clock import FakeClock
    from shared.config import from_env
    from shared.messages import events, make_message

    city = generate_city(grids=16, stations=4, subcenters=2)
    (tmp_path / "city.json").write_text(json.dumps(city))
    settings = from_env(tmp_path, env={})
    dispatch = bootstrap.build(settings, FakeClock(), web=False)
    engine = dispatch.engine
    ensure_city(dispatch, str(tmp_path / "city.json"))
    point = hierarchy_from_city(city).level("grid")[0].geometry.representative_point()
    message = make_message(events.CaseReported(
        case_id="c-dead", number="1", category="other", severity="normal", description="x",
        location=events.Location(point.x, point.y), reporter="w", reported_at=datetime.now(UTC)),
        occurred_at=datetime.now(UTC), producer="test")
    with engine.begin() as db:
        inbox.keep_dead_letter(db, consumer="dispatch.locate", message_id=message.id, routing_key="case.reported",
                               body=message.to_json(), reason="a bug, since fixed")
    assert [d.message_id for d in list_dead(settings)] == [message.id]
    assert replay(settings) == 1
    with engine.connect() as db:
        assert db.execute(sa.select(store.dispatches.c.case_id)).scalars().all() == ["c-dead"]
    assert list_dead(settings) == []
    assert replay(settings) == 0
    engine.dispose()


def test_the_in_memory_bus_wakes_a_waiting_consumer_at_once_and_interrupt_ends_the_wait(tmp_path):
    url = f"memory://{tmp_path.name}"
    queue = bus.queue_for(bus.SUBSCRIPTIONS["dispatch.locate"], url, 5)
    with bus.connect(url) as connection, bus.connect(url) as publishing:
        bus.declare_topology(connection, 5)
        connection.default_channel.queue_purge(queue.name)
        received, sent = [], []
        consumer = connection.Consumer([queue], callbacks=[lambda body, message: (received.append(time.monotonic()),
                                                                                  message.ack())])
        consumer.consume()
        producer = Producer(publishing.default_channel, exchange=bus.EXCHANGE)

        def publish():
            sent.append(time.monotonic())
            producer.publish("{}", routing_key="case.reported")
        threading.Timer(0.3, publish).start()
        connection.drain_events(timeout=5)
        assert received[0] - sent[0] < 0.05, "a publish wakes the waiting consumer (no polling delay)"

        threading.Timer(0.2, bus.interrupt).start()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=5)
        assert time.monotonic() - started < 1, "interrupt() ends a consumer's wait (a stop is not kept waiting)"
        consumer.cancel()


@pytest.mark.rabbitmq
def test_a_type_a_consumer_no_longer_takes_is_unbound_from_its_queue_when_the_topology_is_declared(broker_url):
    """A queue keeps its bindings across deploys: intake.status was bound to case.dispatched before
    case.opened carried the area scope, and must stop receiving it once the topology is declared again."""
    status = bus.SUBSCRIPTIONS["intake.status"]
    assert "case.dispatched" in status.retired and "case.dispatched" not in status.routing_keys
    with bus.connect(broker_url) as connection:
        channel = connection.default_channel
        bus.declare_topology(connection, 5)
        bus.queue_for(status, broker_url, 5).bind_to(bus.EXCHANGE, routing_key="case.dispatched", channel=channel)
        producer = Producer(channel, exchange=bus.EXCHANGE)
        producer.publish("{}", routing_key="case.dispatched")  # as the older release's binding routes it
        wait_for(lambda: queue_depth(broker_url, status.queue_name) == 1, 10, 0.05, "the old binding to route")
        bus.declare_topology(connection, 5)  # a new release starts
        bus.declare_topology(connection, 5)  # and again: unbinding what is not bound is no error
        for key in ("case.dispatched", "case.opened"):
            producer.publish("{}", routing_key=key)
        wait_for(lambda: queue_depth(broker_url, status.queue_name) == 2, 10, 0.05, "case.opened to arrive")
        time.sleep(0.3)
        assert queue_depth(broker_url, status.queue_name) == 2, "case.dispatched still reaches intake.status"
        assert queue_depth(broker_url, bus.SUBSCRIPTIONS["escalation.open"].queue_name) == 2
