"""``gridcase dlq list|replay``: the messages that failed past the delivery limit.

On RabbitMQ they wait in the quorum queue ``gridcase.dead-letter``; replay publishes each back to
``gridcase.events`` under its original routing key (the consumers' inboxes make that safe), then
removes it from the dead-letter queue. In the embedded mode each consumer stored its dead letters
in its own service database; replay runs that consumer's handler again, through the same inbox.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import click
import sqlalchemy as sa
from kombu import Producer

from shared import bus, inbox
from shared.config import SERVICES, Settings, from_env
from shared.db import make_engine


@dataclass(frozen=True)
class DeadLetter:
    where: str
    message_id: str | None
    routing_key: str
    reason: str
    body: str


def list_dead(settings: Settings, limit: int = 1000) -> list[DeadLetter]:
    if bus.is_amqp(settings.broker_url):
        return [letter for letter, _ in _broker_letters(settings, limit, keep=True)]
    out = []
    for service in SERVICES:
        engine = make_engine(settings.database_url(service))
        with engine.connect() as db:
            if sa.inspect(db).has_table("dead_letters"):
                out += [DeadLetter(f"{service}:{r.consumer}#{r.id}", r.message_id, r.routing_key, r.reason, r.body)
                        for r in inbox.list_dead_letters(db, limit=limit)]
        engine.dispose()
    return out


def replay(settings: Settings, message_id: str | None = None) -> int:
    if bus.is_amqp(settings.broker_url):
        return _replay_broker(settings, message_id)
    return sum(_replay_embedded(settings, service, message_id) for service in SERVICES)


def _broker_letters(settings: Settings, limit: int, *, keep: bool):
    """Read the dead-letter queue; with ``keep`` every message goes back when the channel closes."""
    with bus.connect(settings.broker_url) as connection:
        bus.declare_topology(connection, settings.delivery_limit)
        channel = connection.channel()
        taken = []
        while len(taken) < limit:
            message = channel.basic_get(bus.DEAD_QUEUE_NAME, no_ack=False)
            if message is None:
                break
            death = (message.headers or {}).get("x-death") or [{}]
            routing_key = (death[0].get("routing-keys") or [message.delivery_info.get("routing_key", "")])[0]
            body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else message.body
            letter = DeadLetter(death[0].get("queue", "?"), message.properties.get("message_id"), routing_key,
                                str(death[0].get("reason", "")), body)
            taken.append((letter, message))
        yield from ((letter, (channel, message)) for letter, message in taken)
        if keep:
            channel.close()  # unacked: back to the queue


def _replay_broker(settings: Settings, message_id: str | None) -> int:
    count = 0
    with bus.connect(settings.broker_url) as connection:
        producer = Producer(connection.channel(), exchange=bus.EXCHANGE)
        producer.channel.confirm_select()
        for letter, (channel, message) in _broker_letters(settings, 100000, keep=False):
            if message_id and letter.message_id != message_id:
                continue
            producer.publish(letter.body, routing_key=letter.routing_key, delivery_mode=2, message_id=letter.message_id,
                             content_type="application/json", content_encoding="utf-8")
            channel.basic_ack(message.delivery_tag)
            count += 1
    return count


def _replay_embedded(settings: Settings, service: str, message_id: str | None) -> int:
    built = importlib.import_module(f"services.{service}.bootstrap").build(settings, web=False)
    count = 0
    try:
        with built.engine.connect() as db:
            letters = inbox.list_dead_letters(db, message_id=message_id, limit=100000)
        for letter in letters:
            built.workers[letter.consumer]().replay(letter.body)
            with built.engine.begin() as db:
                inbox.forget_dead_letter(db, letter.id)
            count += 1
    finally:
        built.engine.dispose()
    return count


@click.group()
def dlq():
    """Dead letters: messages that failed past the delivery limit."""


@dlq.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def list_command(data_dir):
    """List dead letters (they stay where they are)."""
    letters = list_dead(from_env(data_dir))
    for letter in letters:
        click.echo(f"{letter.message_id or '-':<38} {letter.routing_key:<18} {letter.where:<32} "
                   f"{letter.reason[:60]!r} {letter.body[:80]!r}")
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@dlq.command("replay")
@click.option("--id", "message_id", default=None, help="replay only this message id")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def replay_command(message_id, data_dir):
    """Send dead letters through their consumers again (after the cause is fixed)."""
    click.echo(f"replayed {replay(from_env(data_dir), message_id)} message(s)")
