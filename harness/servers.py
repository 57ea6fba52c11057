"""The real servers tests and benchmarks use: a database of their own on PostgreSQL, gridcase's queues on
RabbitMQ."""
from __future__ import annotations

import psycopg
from kombu import Connection

from shared import bus


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(_plain(admin_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return _plain(admin_url).rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(_plain(admin_url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def purge_broker(url: str) -> None:
    """Delete every gridcase queue so each test starts from an empty broker."""
    with Connection(url) as connection:
        channel = connection.channel()
        for subscription in bus.SUBSCRIPTIONS.values():
            channel.queue_delete(subscription.queue_name)
        channel.queue_delete(bus.DEAD_QUEUE_NAME)


def queue_depth(url: str, name: str) -> int:
    with Connection(url) as connection:
        return connection.channel().queue_declare(name, passive=True).message_count


def consumer_count(url: str, name: str) -> int:
    with Connection(url) as connection:
        return connection.channel().queue_declare(name, passive=True).consumer_count

