"""Background workers as threads, and the readiness checks of a service's dependencies."""
from __future__ import annotations

import threading
from collections.abc import Callable

import sqlalchemy as sa
from kombu import Connection

from shared import bus, logs

log = logs.get("gridcase")


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


class Runner:
    """Runs workers in daemon threads and stops them together."""

    def __init__(self):
        self.workers: list[tuple[str, object, threading.Thread]] = []

    def start(self, name: str, worker) -> None:
        thread = threading.Thread(target=self._guard(name, worker), name=name, daemon=True)
        self.workers.append((name, worker, thread))
        thread.start()

    def start_all(self, services) -> None:
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
                log.exception("worker crashed", worker=name)
                raise
        return run
