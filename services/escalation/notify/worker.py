"""The notifier: delivers the notifications outbox (``gridcase up`` runs it as a thread,
``gridcase worker notify`` as a process of its own; several may run on PostgreSQL).

Each tick takes the pending notifications that are due, in one short transaction that **leases** them
(``store.lease``: counted as an attempt and not due again for ``lease`` seconds), groups them by
endpoint (``channels.endpoint``) and hands each group to a thread of its own, at most
``per_endpoint`` notifications of one endpoint at a time and none of an endpoint still being
delivered to. So a receiver that hangs holds one thread until its timeout, and the others go on.
Each delivery goes through the endpoint's circuit (``delivery.Circuits``); its result is written at
once: ``sent``; pending again at the retry schedule's next time (``delivery.RetryPolicy``); ``dead``
when not retryable or out of time; an open circuit puts it back untried.

Delivery is at least once: a notifier killed between sending and writing ``sent`` leaves the row leased,
and it is sent again, with the same ``Gridcase-Event-Id``, when the lease ends — the receiver
deduplicates by it. Nothing is lost: a row leaves ``pending`` only as ``sent`` or ``dead``.

The notifier wakes on every commit in its process (a new notification) and when a group finishes,
otherwise at the next due time or after ``idle_interval`` (another process's rows). ``/metrics``:
``gridcase_notifications_sent_total``, ``gridcase_notifications_failed_total`` (``final``: ``dead`` or
``retry``), ``gridcase_notification_latency_seconds`` (written → delivered) and
``gridcase_notification_attempt_seconds`` (one attempt), each by ``channel``.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Histogram

from services.escalation.notify.channels import DeliveryError, Outlet, deliver, endpoint
from services.escalation.notify.delivery import CircuitOpen, Circuits, RetryPolicy
from services.escalation.notify.events import Subscription
from services.escalation.notify.store import NotificationStore
from shared import logs
from shared.clock import isoformat
from shared.uow import forget, on_commit

log = logs.get("gridcase.notify")
SENT = Counter("gridcase_notifications_sent_total", "Notifications delivered", ["channel"])
FAILED = Counter("gridcase_notifications_failed_total", "Failed delivery attempts (final: dead or retry)",
                 ["channel", "final"])
LATENCY = Histogram("gridcase_notification_latency_seconds", "Real seconds from a notification's step to its "
                    "delivery", ["channel"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400))
ATTEMPT = Histogram("gridcase_notification_attempt_seconds", "Real seconds one delivery attempt took", ["channel"],
                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))


def now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    PAGES = 5  # pages of due rows one tick looks through for endpoints that are free

    def __init__(self, service, *, batch: int = 200, per_endpoint: int = 3, threads: int = 8,
                 idle_interval: float | None = None, policy: RetryPolicy | None = None,
                 circuits: Circuits | None = None):
        settings = service.settings
        self.engine = service.engine
        self.outlet = Outlet.of(settings)
        self.policy = policy or RetryPolicy(initial=settings.notify_retry_initial)
        self.circuits = circuits or Circuits()
        self.batch, self.per_endpoint = batch, per_endpoint
        #: a whole group's attempts (connect and read timeouts each) and a margin
        self.lease = timedelta(seconds=2 * self.outlet.timeout * per_endpoint + 5)
        self.idle_interval = idle_interval or (10.0 if settings.embedded else 0.5)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="notify")
        self.busy: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.wake = on_commit(self.engine)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            wait = self.idle_interval
            try:
                taken, next_at = self.tick()
                if next_at is not None:
                    wait = min(max((next_at - now()).total_seconds(), 0.05), self.idle_interval)
                if taken == self.batch:
                    wait = 0.0
            except Exception:
                log.warning("notifier tick failed; retrying", exc_info=True)
            self.wake.wait(wait)

    def tick(self) -> tuple[int, datetime | None]:
        """Lease what is due and start its deliveries; returns (how many, when the next is due). Due rows
        of an endpoint whose circuit is open are put off, untried, until it may be tried again; rows of an
        endpoint still being delivered to are left for a later tick and looked past (up to ``PAGES``
        pages), so a backlog for one dead receiver never hides another's rows."""
        moment = now()
        groups: dict[str, list] = {}
        put_off: list[int] = []
        with self.engine.begin() as connection:
            db = NotificationStore(connection)
            after = None
            for _ in range(self.PAGES):
                rows = db.due(moment, self.batch, after)
                for row in rows:
                    if row.found is None:
                        db.mark_dead(row.id, "the subscription was removed")
                        continue
                    key = endpoint(row.channel, row.target, self.outlet)
                    with self.lock:
                        if key in self.busy:
                            continue
                    if self.circuits.is_open(key):
                        put_off.append(row.id)
                        continue
                    group = groups.setdefault(key, [])
                    if len(group) < self.per_endpoint:
                        group.append(row)
                if len(rows) < self.batch or sum(len(g) for g in groups.values()) >= self.batch:
                    break
                after = (rows[-1].next_attempt_at, rows[-1].id)
            db.lease([r.id for g in groups.values() for r in g], moment + self.lease)
            db.defer(put_off, moment + timedelta(seconds=self.circuits.reset_timeout))
            next_at = db.next_due()
        with self.lock:
            self.busy.update(groups)
        for key, rows in groups.items():
            self.pool.submit(self._deliver_group, key, rows)
        return sum(len(g) for g in groups.values()), next_at

    def _deliver_group(self, key: str, rows: list) -> None:
        try:
            for row in rows:
                try:
                    self._deliver(key, row)
                except Exception:
                    log.exception("notification not settled; its lease ends it", notification=row.id)
        finally:
            with self.lock:
                self.busy.discard(key)
            self.wake.set()

    def _deliver(self, key: str, row) -> None:
        started = time.perf_counter()
        try:
            self.circuits.call(key, lambda: deliver(row.channel, row.target, row.secret, row.language, row.payload,
                                                    row.event_id, self.outlet))
        except CircuitOpen as closed:
            with self.engine.begin() as connection:
                NotificationStore(connection).reschedule(row.id, now() + timedelta(seconds=closed.seconds),
                                                         str(closed), untried=True)
            return
        except DeliveryError as error:
            self._failed(row, error, started)
            return
        except Exception as error:  # a fault of ours: tried again on the schedule
            log.exception("delivery failed unexpectedly", notification=row.id)
            self._failed(row, DeliveryError(f"{type(error).__name__}: {error}", retryable=True), started)
            return
        ATTEMPT.labels(row.channel).observe(time.perf_counter() - started)
        with self.engine.begin() as connection:
            NotificationStore(connection).mark_sent(row.id, now())
        SENT.labels(row.channel).inc()
        LATENCY.labels(row.channel).observe(max((now() - row.created_at).total_seconds(), 0.0))
        log.info("notification sent", notification=row.id, event_id=row.event_id, notice=row.event,
                 channel=row.channel, attempt=row.attempts + 1)

    def _failed(self, row, error: DeliveryError, started: float) -> None:
        ATTEMPT.labels(row.channel).observe(time.perf_counter() - started)
        at = self.policy.next_attempt(row.attempts + 1, row.created_at, now(), error)
        with self.engine.begin() as connection:
            db = NotificationStore(connection)
            if at is None:
                db.mark_dead(row.id, str(error))
            else:
                db.reschedule(row.id, at, str(error))
        FAILED.labels(row.channel, "dead" if at is None else "retry").inc()
        log.warning("notification not delivered", notification=row.id, event_id=row.event_id, channel=row.channel,
                    attempt=row.attempts + 1, error=str(error), next_attempt=isoformat(at) if at else None)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        forget(self.engine, self.wake)
        self.pool.shutdown(wait=False, cancel_futures=True)


def send_test(subscription: Subscription, outlet: Outlet, at: datetime) -> dict:
    """Send a test notification to ``subscription`` at once (no outbox, no retry): ``{"id", "delivered",
    "detail"}``. An in-app subscription has nothing to reach: it answers delivered."""
    event_id = str(uuid.uuid4())
    payload = {"id": event_id, "event": "test", "at": isoformat(at), "urgent": False, "case": None,
               "note": "gridcase test notification" if subscription.language == "en" else "gridcase 测试通知"}
    if subscription.channel == "inapp":
        return {"id": event_id, "delivered": True, "detail": "in-app: shown on the board"}
    try:
        deliver(subscription.channel, subscription.target, subscription.secret, subscription.language, payload,
                event_id, outlet)
    except DeliveryError as error:
        return {"id": event_id, "delivered": False, "detail": str(error)}
    return {"id": event_id, "delivered": True, "detail": "delivered"}
