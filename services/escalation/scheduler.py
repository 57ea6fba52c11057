"""The deadline scheduler: a loop over the due rows of the escalation database.

Deadlines live in the database, never in message TTLs. Each tick is one unit of work over the rows
already due (an indexed query); how many cases are open does not matter.
"""
from __future__ import annotations

import threading

from services.escalation.handlers import escalate_due
from shared import logs

log = logs.get("gridcase.scheduler")


class Scheduler:
    def __init__(self, service, *, interval: float = 0.2, batch: int = 500):
        self.service = service
        self.interval = interval
        self.batch = batch
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if self.service.run(escalate_due, self.batch) == self.batch:
                    continue  # more are due: no pause
            except Exception:
                log.warning("scheduler tick failed; retrying", exc_info=True)
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
