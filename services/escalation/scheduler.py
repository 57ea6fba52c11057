"""The deadline scheduler, and the auditor of its timers.

Deadlines live in the escalation database, never in message TTLs. Each tick is one unit of work over
the cases already due (an indexed query on ``due_at``); how many cases are open does not matter. A
tick comes at once while a full batch was due, ``interval`` seconds (real time) after a tick that fired
something, and up to ``idle_interval`` after ticks that found nothing — so a deadline fires within about
``idle_interval`` of passing (p99 ≤ 1 s, benchmarks/scheduler.py) and never before
(``deadlines.is_late``), and an idle system is not woken five times a second.

The auditor (after Grafana OnCall's ``check_escalation_finished``) counts working cases that have no
pending deadline, and deadlines past by more than a grace period that nothing fired (a dead
scheduler); ``/readyz`` shows the counts under ``detail.timers`` and ``/metrics`` exports them.
"""
from __future__ import annotations

import threading

from prometheus_client import Gauge

from services.escalation.handlers import escalate_due
from shared import logs

log = logs.get("gridcase.scheduler")
WITHOUT_DEADLINE = Gauge("gridcase_timers_without_deadline", "Working cases with no pending deadline",
                         multiprocess_mode="max")
UNFIRED = Gauge("gridcase_timers_unfired", "Deadlines past the grace period that no scheduler fired",
                multiprocess_mode="max")
#: A deadline not fired this many real seconds after it passed means no scheduler is running.
GRACE_SECONDS = 30.0


class Scheduler:
    def __init__(self, service, *, interval: float = 0.2, idle_interval: float = 0.5, batch: int = 500):
        self.service = service
        self.interval = interval
        self.idle_interval = idle_interval
        self.batch = batch
        self.stopping = threading.Event()

    def run(self) -> None:
        wait = self.interval
        while not self.stopping.is_set():
            try:
                fired = self.service.run(escalate_due, self.batch)
                if fired == self.batch:
                    continue  # more are due: no pause
                wait = self.interval if fired else min(wait * 1.5, self.idle_interval)
            except Exception:
                log.warning("scheduler tick failed; retrying", exc_info=True)
            self.stopping.wait(wait)

    def stop(self) -> None:
        self.stopping.set()


def timer_health(service) -> dict:
    """The auditor's counts, also set on the gauges: ``{"timers": {"without_deadline", "unfired"}}``."""
    grace = GRACE_SECONDS * getattr(service.clock, "scale", 1.0)  # in service seconds
    with service.uow() as uow:
        counts = uow.store.timer_health(service.clock.now(), grace)
    WITHOUT_DEADLINE.set(counts["without_deadline"])
    UNFIRED.set(counts["unfired"])
    return {"timers": counts}
