"""The deadline scheduler: a loop over the due rows of the escalation database.

Deadlines live in the database, never in message TTLs. Each tick costs one indexed query for the
rows already due; how many cases are open does not matter.
"""
from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from services.escalation.handlers import escalate_due
from shared.clock import Clock

log = logging.getLogger("gridcase.scheduler")


class Scheduler:
    def __init__(self, engine: sa.Engine, clock: Clock, *, interval: float = 0.2, batch: int = 500):
        self.engine = engine
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if escalate_due(self.engine, self.clock, limit=self.batch) == self.batch:
                    continue  # more are due: no pause
            except Exception:
                log.warning("scheduler tick failed; retrying", exc_info=True)
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
