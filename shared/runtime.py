"""What a service is at run time, and how its background workers run as threads.

Each service's ``bootstrap.build()`` returns a ``Service``: its database engine, its Flask app and
factories for its background workers (outbox relay, consumers, scheduler). ``gridcase up`` runs
all three services' workers in one process; ``gridcase worker <service>`` runs one service's.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from kombu import Connection

from shared import bus
from shared.config import Settings
from shared.relay import Relay, publisher_factory

log = logging.getLogger("gridcase")


@dataclass
class Service:
    name: str
    settings: Settings
    engine: sa.Engine
    app: Flask | None = None
    #: name → factory of an object with ``run()`` (blocking) and ``stop()``.
    workers: dict[str, Callable[[], object]] = field(default_factory=dict)


def check_database(engine: sa.Engine) -> Callable[[], None]:
    def check():
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    return check


def check_broker(url: str) -> Callable[[], None]:
    def check():
        if bus.is_amqp(url):
            with Connection(url, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
    return check


def relay_factory(service: str, settings: Settings, engine: sa.Engine) -> Callable[[], Relay]:
    # The in-memory bus forgets everything on a crash: replay what was sent in the last hour.
    window = timedelta(hours=1) if settings.embedded else None
    return lambda: Relay(engine, service, publisher_factory(settings.broker_url, settings.delivery_limit),
                         replay_window=window)


def consumer_factories(handlers: dict, engine: sa.Engine, settings: Settings) -> dict[str, Callable[[], object]]:
    """One consumer worker per subscription name (see ``shared.bus.SUBSCRIPTIONS``)."""
    from shared.consumer import ConsumerWorker

    def factory(name, handler):
        return lambda: ConsumerWorker(bus.SUBSCRIPTIONS[name], handler, engine, settings.broker_url,
                                      delivery_limit=settings.delivery_limit)
    return {name: factory(name, handler) for name, handler in handlers.items()}


class Runner:
    """Runs workers in daemon threads and stops them together."""

    def __init__(self):
        self.workers: list[tuple[str, object, threading.Thread]] = []

    def start(self, name: str, worker) -> None:
        thread = threading.Thread(target=self._guard(name, worker), name=name, daemon=True)
        self.workers.append((name, worker, thread))
        thread.start()

    def start_all(self, services: list[Service]) -> None:
        for service in services:
            for name, factory in service.workers.items():
                self.start(f"{service.name}.{name}", factory())

    def alive(self) -> None:
        dead = [name for name, _, thread in self.workers if not thread.is_alive()]
        if dead:
            raise RuntimeError(f"workers stopped: {', '.join(dead)}")

    def stop(self, timeout: float = 5.0) -> None:
        for _, worker, _ in self.workers:
            worker.stop()
        for _, _, thread in self.workers:
            thread.join(timeout)

    @staticmethod
    def _guard(name: str, worker):
        def run():
            try:
                worker.run()
            except Exception:
                log.exception("worker %s crashed", name)
                raise
        return run
