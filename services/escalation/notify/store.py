"""Every query on the subscriptions and the notifications outbox (escalation's database), over the
caller's connection and transaction."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from services.escalation.notify.events import Subscription
from services.escalation.notify.subscriptions import Units
from services.escalation.store import areas, departments, notifications, subscriptions

n = notifications.c


def subscription(row) -> Subscription:
    return Subscription(row.id, row.unit, row.user, row.role, tuple(row.events), row.channel, row.target,
                        row.secret, row.language, bool(row.quiet_hours))


class NotificationStore:
    """The queries, over one connection (a unit of work's, or the notifier's own transaction)."""

    def __init__(self, db: sa.Connection):
        self.db = db

    def add(self, rows: list[dict]) -> None:
        """New notification rows (``notify.outbox``), in the caller's transaction."""
        if rows:
            self.db.execute(notifications.insert(), rows)

    def taken(self, event_id: str) -> set[str]:
        """The subscribers (subscription ids) that have a row for ``event_id`` already."""
        return set(self.db.execute(sa.select(n.subscription_id).where(n.event_id == event_id)).scalars())

    # -- subscriptions ----------------------------------------------------------------------------------------

    def all_subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        rows = self.db.execute(sa.select(subscriptions).order_by(subscriptions.c.created_at, subscriptions.c.id))
        return [subscription(r) for r in rows]

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        row = self.db.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
        return subscription(row) if row else None

    def add_subscription(self, fields: dict, created_by: str, now: datetime) -> str:
        """Store a checked subscription (``subscriptions.check``); returns its new id."""
        new_id = str(uuid.uuid4())
        names = ("unit", "user", "role", "events", "channel", "target", "secret", "language", "quiet_hours")
        self.db.execute(subscriptions.insert().values(id=new_id, created_by=created_by, created_at=now,
                                                      **{k: fields[k] for k in names if k in fields}))
        return new_id

    def remove_subscription(self, subscription_id: str, now: datetime) -> bool:
        """Remove a subscription; what it still had pending is given up (``dead``). False if unknown."""
        gone = self.db.execute(subscriptions.delete().where(subscriptions.c.id == subscription_id)).rowcount
        if gone:
            self.db.execute(notifications.update().where(n.subscription_id == subscription_id, n.status == "pending")
                            .values(status="dead", last_error="the subscription was removed", next_attempt_at=None))
        return bool(gone)

    def city_units(self) -> Units:
        """The city's areas (escalation's copy of the active hierarchy) and departments."""
        return Units(dict(self.db.execute(sa.select(areas.c.id, areas.c.level)).all()),
                     frozenset(self.db.execute(sa.select(departments.c.id)).scalars()))

    # -- the outbox ---------------------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int, after: tuple[datetime, int] | None = None) -> list:
        """The pending notifications whose time has come, oldest first (``after``: those after this
        ``(next_attempt_at, id)``, the next page), with their subscription's channel settings (``found``
        None when it was removed). On PostgreSQL the rows are locked and skipped by other notifiers
        (``FOR UPDATE SKIP LOCKED``) until the caller's transaction, which leases them, ends."""
        s = subscriptions.c
        query = (sa.select(n.id, n.event_id, n.subscription_id, n.event, n.channel, n.language, n.payload, n.attempts,
                           n.created_at, n.next_attempt_at, s.target, s.secret, s.id.label("found"))
                 .select_from(notifications.outerjoin(subscriptions, s.id == n.subscription_id))
                 .where(n.status == "pending", n.next_attempt_at <= now).order_by(n.next_attempt_at, n.id).limit(limit))
        if after is not None:
            query = query.where(sa.or_(n.next_attempt_at > after[0],
                                       sa.and_(n.next_attempt_at == after[0], n.id > after[1])))
        if self.db.dialect.name == "postgresql":
            query = query.with_for_update(of=notifications, skip_locked=True)
        return self.db.execute(query).all()

    def next_due(self) -> datetime | None:
        """When the next pending notification is due (real time), or None."""
        return self.db.execute(sa.select(sa.func.min(n.next_attempt_at)).where(n.status == "pending")).scalar()

    def lease(self, ids: list[int], until: datetime) -> None:
        """Take ``ids`` for one attempt each: counted, and not due again before ``until`` (a notifier that dies
        mid-delivery leaves them to be tried again then)."""
        if ids:
            self.db.execute(notifications.update().where(n.id.in_(ids), n.status == "pending")
                            .values(next_attempt_at=until, attempts=n.attempts + 1))

    def defer(self, ids: list[int], until: datetime) -> None:
        """Not due before ``until``, untried (their endpoint's circuit is open)."""
        if ids:
            self.db.execute(notifications.update().where(n.id.in_(ids), n.status == "pending")
                            .values(next_attempt_at=until, last_error="circuit open: the receiver keeps failing"))

    def mark_sent(self, notification_id: int, now: datetime) -> None:
        self.db.execute(notifications.update().where(n.id == notification_id)
                        .values(status="sent", sent_at=now, next_attempt_at=None, last_error=None))

    def reschedule(self, notification_id: int, at: datetime, error: str, *, untried: bool = False) -> None:
        """Try again at ``at``; ``untried``: the lease's attempt did not happen (an open circuit)."""
        values = {"next_attempt_at": at, "last_error": error[:500]}
        if untried:
            values["attempts"] = n.attempts - 1
        self.db.execute(notifications.update().where(n.id == notification_id, n.status == "pending").values(**values))

    def mark_dead(self, notification_id: int, error: str) -> None:
        self.db.execute(notifications.update().where(n.id == notification_id)
                        .values(status="dead", next_attempt_at=None, last_error=error[:500]))

    def dead(self, limit: int = 1000) -> list:
        """The notifications given up, newest first."""
        query = sa.select(notifications).where(n.status == "dead").order_by(n.id.desc()).limit(limit)
        return self.db.execute(query).all()

    def retry(self, notification_id: int, now: datetime) -> bool:
        """A dead notification pending again now, with a new 24 hours of tries; False unless it was dead and
        its subscription still exists."""
        exists = sa.exists().where(subscriptions.c.id == n.subscription_id)
        query = notifications.update().where(n.id == notification_id, n.status == "dead", exists)
        return bool(self.db.execute(query.values(status="pending", attempts=0, next_attempt_at=now, created_at=now,
                                                 last_error=None)).rowcount)

    def counts(self) -> dict[str, int]:
        """Notifications by status (``pending``, ``sent``, ``dead``, ``inapp``)."""
        return dict(self.db.execute(sa.select(n.status, sa.func.count()).group_by(n.status)).all())

    # -- the bell (in-app) ---------------------------------------------------------------------------------------

    def inbox(self, recipients: Iterable[str], *, unread: bool, limit: int, before: int | None = None,
              reader: str | None = None) -> list:
        """The in-app notifications of ``recipients`` (``unit:<id>``, ``role:<role>``, ``user:<name>``), newest
        first, one per event (``event_id``: a person who hears a step both through their unit and through
        their own subscription sees it once); ``unread``: only those not read yet; ``before``: with a
        smaller id (the next page); ``reader``: the person reading, never told of their own steps
        (``caused_by``: a case they filed arriving in their grid's inbox, an action they took)."""
        first = self._first_per_event(recipients, unread, reader)
        query = sa.select(n.id, n.event_id, n.event, n.case_id, n.payload, n.created_at, n.read_at).where(
            n.id.in_(first))
        if before is not None:
            query = query.where(n.id < before)
        return self.db.execute(query.order_by(n.id.desc()).limit(limit)).all()

    def unread_count(self, recipients: Iterable[str], reader: str | None = None) -> int:
        """How many events ``recipients`` have not read (each event once, as ``inbox`` lists them to
        ``reader``)."""
        return self.db.execute(sa.select(sa.func.count(sa.distinct(n.event_id))).where(
            n.status == "inapp", n.recipient.in_(list(recipients)), n.read_at.is_(None),
            *_not_by(reader))).scalar_one()

    def mark_read(self, recipients: Iterable[str], ids: list[int] | None, now: datetime) -> int:
        """Mark the caller's in-app notifications ``ids`` (None: all) read, with every other row of the
        caller's for the same events; returns how many rows changed."""
        recipients = list(recipients)
        query = notifications.update().where(n.status == "inapp", n.recipient.in_(recipients), n.read_at.is_(None))
        if ids is not None:
            events = sa.select(n.event_id).where(n.id.in_(ids), n.status == "inapp", n.recipient.in_(recipients))
            query = query.where(n.event_id.in_(events.scalar_subquery()))
        return self.db.execute(query.values(read_at=now)).rowcount

    def _first_per_event(self, recipients: Iterable[str], unread: bool, reader: str | None = None):
        """The id of the first in-app row of each event among ``recipients``' rows (unread ones only:
        ``unread``; none of ``reader``'s own steps)."""
        mine = [n.status == "inapp", n.recipient.in_(list(recipients)), *_not_by(reader)]
        if unread:
            mine.append(n.read_at.is_(None))
        return sa.select(sa.func.min(n.id)).where(*mine).group_by(n.event_id).scalar_subquery()


def _not_by(reader: str | None) -> list:
    """The condition leaving out the rows of ``reader``'s own steps (none without a reader)."""
    if reader is None:
        return []
    return [sa.or_(n.caused_by.is_(None), n.caused_by != reader)]
