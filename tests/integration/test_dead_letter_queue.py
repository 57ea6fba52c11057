"""The dead-letter queue keeps what it holds: listing it again and again drops nothing (RabbitMQ 4.0-4.2
count every return against a quorum queue's delivery limit, 20 by default), and a dead-letter queue declared
before with other arguments is kept as it is instead of stopping every service that declares the topology."""
from __future__ import annotations

import pytest
from kombu import Connection, Producer

from gridcase.dlq import list_dead
from harness.servers import queue_depth
from shared import bus
from shared.config import Settings

pytestmark = pytest.mark.rabbitmq


def dead_letter(connection: Connection, message_id: str) -> None:
    """Put a letter where RabbitMQ puts one: published to the dead-letter exchange."""
    Producer(connection.default_channel, exchange=bus.DEAD_EXCHANGE).publish(
        b'{"case": "x"}', routing_key="case.reported", message_id=message_id, delivery_mode=2,
        content_type="application/json", content_encoding="utf-8")


def test_listing_the_dead_letters_25_times_drops_none(broker_url):
    with Connection(broker_url) as connection:
        bus.declare_topology(connection, 5)
        for i in range(3):
            dead_letter(connection, f"letter-{i}")
    settings = Settings(broker_url=broker_url, secret="x" * 32)
    for _ in range(25):
        assert sorted(letter.message_id for letter in list_dead(settings)) == ["letter-0", "letter-1", "letter-2"]
    assert queue_depth(broker_url, bus.DEAD_QUEUE_NAME) == 3


def test_a_dead_letter_queue_declared_before_with_other_arguments_is_kept_and_still_takes_letters(broker_url,
                                                                                               capfd, caplog):
    with Connection(broker_url) as connection:
        channel = connection.channel()
        channel.queue_declare(bus.DEAD_QUEUE_NAME, durable=True, auto_delete=False,
                              arguments={"x-queue-type": "quorum", "x-delivery-limit": 1000})
        channel.queue_bind(bus.DEAD_QUEUE_NAME, bus.DEAD_EXCHANGE.name, "")
        bus.declare_topology(connection, 5)  # refused for the dead-letter queue: kept, and the rest declared
        bus.declare_topology(connection, 5)  # a second start alike
        assert queue_depth(broker_url, bus.SUBSCRIPTIONS["dispatch.locate"].queue_name) == 0
        dead_letter(connection, "after")
    assert queue_depth(broker_url, bus.DEAD_QUEUE_NAME) == 1
    captured = capfd.readouterr()
    assert "the dead-letter queue was declared before with other arguments" in captured.out + captured.err + caplog.text
