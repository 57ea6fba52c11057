"""The deadline scheduler, and the auditor of its timers.

Deadlines live in the escalation database, never in message TTLs. Each tick is one unit of work over
the cases already due (an indexed query on ``due_at``); how many cases are open does not matter. A
tick comes at once while a full batch was due, ``interval`` seconds (real time) after a tick that fired
something, and otherwise when the earliest pending ``due_at`` comes (``store.next_due``), when a commit
in this process wakes it (``shared.uow.on_commit``: a new or changed deadline), or after
``idle_interval``, whichever is first. ``idle_interval`` bounds how late a deadline written by another
process is seen: 0.5 s in production, where the API runs in gunicorn, and 10 s embedded, where every
writer shares the process (a wake of an idle process is not free: ``tests/e2e/test_idle.py``). So a
deadline fires within about ``interval`` of passing (p99 ≤ 1 s, benchmarks/scheduler.py) and never
before (``deadlines.is_late``), and an idle system is not woken for nothing.

The auditor (after Grafana OnCall's ``check_escalation_finished``) counts working cases that have no
pending deadline, and deadlines past by more than a grace period that nothing fired (a dead
scheduler); ``/readyz`` shows the counts under ``detail.timers`` and ``/metrics`` exports them.

The same loop writes the audit trail's signed checkpoints on their own interval
(``services/escalation/checkpoints.py``), at most ``idle_interval`` late, and brings the statistics'
rollups up to date every ``rollups.REFRESH_SECONDS`` (``services/escalation/rollups.py``), so that a
reader of the statistics seldom has much to recompute.
"""
from __future__ import annotations

import threading
import time

from prometheus_client import Gauge

from services.escalation import rollups
from services.escalation.checkpoints import Checkpoints
from services.escalation.handlers import escalate_due, next_due, refresh_rollups
from shared import logs
from shared.uow import forget, on_commit

log = logs.get("gridcase.scheduler")
WITHOUT_DEADLINE = Gauge("gridcase_timers_without_deadline", "Working cases with no pending deadline",
                         multiprocess_mode="max")
UNFIRED = Gauge("gridcase_timers_unfired", "Deadlines past the grace period that no scheduler fired",
                multiprocess_mode="max")
#: A deadline not fired this many real seconds after it passed means no scheduler is running.
GRACE_SECONDS = 30.0


class Scheduler:
    def __init__(self, service, *, interval: float = 0.2, idle_interval: float | None = None, batch: int = 500):
        self.service = service
        self.interval = interval
        self.idle_interval = idle_interval or (10.0 if service.settings.embedded else 0.5)
        self.batch = batch
        self.stopping = threading.Event()
        self.committed = on_commit(service.engine)
        self.checkpoints = Checkpoints(service)  # the audit trail's signed checkpoints, on their own interval
        self.rollups_at = time.monotonic() + rollups.REFRESH_SECONDS

    def run(self) -> None:
        while not self.stopping.is_set():
            wait = self.interval
            try:
                fired = self.service.run(escalate_due, self.batch)
                if fired == self.batch:
                    continue  # more are due: no pause
                if not fired:
                    wait = self._until_next_due()
            except Exception:
                log.warning("scheduler tick failed; retrying", exc_info=True)
            self.checkpoints.maybe_write()
            self._refresh_rollups()
            if self.committed.wait(wait):
                self.stopping.wait(self.interval)  # a burst of commits makes one tick, not one each
        self.checkpoints.maybe_write(now=True)  # the last rows before a stop are covered too

    def _refresh_rollups(self) -> None:
        """The statistics' rollups, every ``rollups.REFRESH_SECONDS``; a failure is logged and tried again
        at the next interval (readers refresh for themselves meanwhile)."""
        if time.monotonic() < self.rollups_at:
            return
        self.rollups_at = time.monotonic() + rollups.REFRESH_SECONDS
        try:
            self.service.run(refresh_rollups, False)
        except Exception:
            log.warning("statistics rollups not refreshed; trying again at the next interval", exc_info=True)

    def _until_next_due(self) -> float:
        """Real seconds to wait: until the earliest ``due_at``, within ``[interval, idle_interval]``. A
        commit after ``clear`` sets the event again, so the deadline it writes is not slept past."""
        self.committed.clear()
        due = self.service.run(next_due)
        if due is None:
            return self.idle_interval
        service_seconds = (due - self.service.clock.now()).total_seconds()
        return min(max(self.service.clock.to_real_seconds(service_seconds), self.interval), self.idle_interval)

    def stop(self) -> None:
        self.stopping.set()
        self.committed.set()
        forget(self.service.engine, self.committed)


def timer_health(service) -> dict:
    """The auditor's counts, also set on the gauges: ``{"timers": {"without_deadline", "unfired"}}``."""
    grace = GRACE_SECONDS * getattr(service.clock, "scale", 1.0)  # in service seconds
    with service.uow() as uow:
        counts = uow.store.timer_health(service.clock.now(), grace)
    WITHOUT_DEADLINE.set(counts["without_deadline"])
    UNFIRED.set(counts["unfired"])
    return {"timers": counts}
