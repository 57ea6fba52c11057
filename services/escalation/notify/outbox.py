"""Notifications written in the transaction of the step that causes them (the notifications outbox).

``enqueue_steps`` is called by ``handlers.publish`` for every outcome a use case publishes, so every
step of every door (HTTP, consumer, scheduler) passes here; ``enqueue`` takes an event from elsewhere
(``early_warning``). Both write, in the caller's unit of work, one ``notifications`` row per
(event, subscriber): a ``pending`` row per matching channel subscription (the notifier delivers it), an
``inapp`` row per matching in-app subscription and per default rule (``events.DEFAULT_RULES``). The pair
(event id, subscription id) is unique, so an event reaches a subscriber once; a rolled-back step leaves
no notification.

A person is not told of what they did themselves: each row keeps ``caused_by``, the person whose step
it tells of (the step's actor, or for a case's opening, whose report it is), and their bell leaves it
out (``NotificationStore.inbox``); the others of the same inbox are told.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from services.escalation.domain.calendar import WorkingCalendar
from services.escalation.domain.cases import Case
from services.escalation.domain.timeline import SYSTEM, Outcome, Step, StepType
from services.escalation.notify.events import (
    DEFAULT_RULES,
    URGENT,
    Addressee,
    Notice,
    Subscription,
    matches,
    notices,
    units_of,
)
from shared.clock import isoformat
from shared.vocabulary import Level
from shared.words import note_message, note_text

#: a unit of work's connection → the subscriptions read in it (one read per transaction, however many steps)
_read: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _subscriptions(uow) -> list[Subscription]:
    connection = getattr(uow.store, "db", None)
    if connection is None:  # a store without a connection of its own (the tests' in-memory one)
        return uow.store.notifications.all_subscriptions()
    if connection not in _read:
        _read[connection] = uow.store.notifications.all_subscriptions()
    return _read[connection]


def enqueue_steps(uow, case: Case, outcome: Outcome, *, reporter: str | None = None) -> int:
    """The notifications of the steps ``outcome`` made on ``case``, in ``uow``'s transaction; returns how
    many rows were written. Called after the case was saved (its revision names the steps) or, for a
    case opening now, before (revision 1; ``reporter``: who filed it, as the store does not know yet)."""
    try:
        revision = uow.store.revision(case.id)
    except KeyError:
        revision = 1  # a case that opens in this unit of work
    found = notices(case, outcome, revision)
    if not found:
        return 0
    subs = _subscriptions(uow)
    if reporter is None and any(s.user is not None for s in subs):
        reporter = uow.store.reporter(case.id)
    units = units_of(case)
    urgent = case.severity == URGENT
    rows = []
    for notice in found:
        rows += _rows(notice, _payload(case, notice, urgent), units, reporter, subs, case_id=case.id,
                      urgent=urgent, calendar=case.policy.calendar, clock=getattr(uow, "clock", None),
                      caused_by=caused_by(notice.step, reporter))
    uow.store.hold_notifications(rows)
    return len(rows)


def enqueue(uow, *, event: str, event_id: str, payload: dict, units: Iterable[str] = (),
            addressees: Iterable[Addressee] = (), at: datetime | None = None, case_id: str | None = None,
            urgent: bool = False, calendar: WorkingCalendar | None = None, fresh: bool = False) -> int:
    """Notify ``event`` (one of ``events.EVENTS``, e.g. ``early_warning``) in ``uow``'s transaction.

    ``event_id``: a stable id naming this event (the same id again writes nothing new: pass the id of
    the thing that happened, e.g. an early warning's id); ``units``: the areas and departments it concerns
    (unit subscriptions hear it); ``addressees``: the units it is addressed to (role subscriptions and the
    in-app default); ``payload``: JSON-ready fields the receivers get beside ``id``, ``event`` and ``at``
    (service time, ISO 8601 UTC; default now); ``calendar``: whose working hours quiet hours wait for;
    ``fresh``: ``event_id`` was made in this transaction (a new item's id), so no row can name it yet and
    none is looked for. Returns how many rows were written."""
    clock = getattr(uow, "clock", None)
    at = at or (clock.now() if clock else datetime.now(UTC))
    notice = Notice(event_id, event, tuple(addressees), Step(at, event, Level.HQ, SYSTEM))
    body = {"id": event_id, "event": event, "at": isoformat(at), **payload, "urgent": urgent,
            "to": [{"unit": a.unit, "role": a.role} for a in notice.addressees]}
    taken = set() if fresh else uow.store.notifications.taken(event_id)
    rows = [r for r in _rows(notice, body, frozenset(units), None, _subscriptions(uow), case_id=case_id,
                             urgent=urgent, calendar=calendar, clock=clock)
            if r["subscription_id"] not in taken]
    uow.store.hold_notifications(rows)
    return len(rows)


def caused_by(step: Step, reporter: str | None) -> str | None:
    """The person whose own doing ``step`` is: its actor, or for a case's opening (the system's step)
    whoever filed the report (``reporter``); None for the system's other steps."""
    if step.actor != SYSTEM:
        return step.actor
    return reporter if str(step.type) == StepType.OPENED else None


def _rows(notice: Notice, payload: dict, units: frozenset[str], reporter: str | None, subs: list[Subscription], *,
          case_id: str | None, urgent: bool, calendar: WorkingCalendar | None, clock,
          caused_by: str | None = None) -> list[dict]:
    now = datetime.now(UTC)
    base = {"event_id": notice.id, "event": notice.event, "case_id": case_id, "payload": payload,
            "created_at": now, "attempts": 0, "next_attempt_at": None, "caused_by": caused_by}
    rows = {}
    for sub in subs:
        if not matches(sub, notice, units, reporter):
            continue
        if sub.channel == "inapp":
            recipient = f"user:{sub.user}" if sub.user else f"unit:{sub.unit}" if sub.unit else f"role:{sub.role}"
            rows[sub.id] = {**base, "subscription_id": sub.id, "channel": "inapp", "recipient": recipient,
                            "language": sub.language, "status": "inapp"}
            continue
        wait = None if urgent or not sub.quiet_hours else quiet_until(calendar, notice.step.at)
        seconds = (wait - notice.step.at).total_seconds() if wait else 0.0
        delay = clock.to_real_seconds(seconds) if clock is not None and seconds else seconds
        rows[sub.id] = {**base, "subscription_id": sub.id, "channel": sub.channel, "recipient": None,
                        "language": sub.language, "status": "pending",
                        "next_attempt_at": now + timedelta(seconds=delay)}
    for rule, event in DEFAULT_RULES.items():
        if event != notice.event:
            continue
        for addressee in notice.addressees:
            key = f"{rule}:{addressee.inbox}"
            rows[key] = {**base, "subscription_id": key, "channel": "inapp", "recipient": addressee.inbox,
                         "language": "zh", "status": "inapp"}
    return list(rows.values())


def quiet_until(calendar: WorkingCalendar | None, at: datetime) -> datetime | None:
    """When a notification of a step at ``at`` may be sent to a unit with quiet hours: the start of the
    next working period of ``calendar`` (``at`` itself within working time), or None without a calendar."""
    if calendar is None:
        return None
    start, _ = next(calendar.periods_from(at))
    return start if start > at else None


def _payload(case: Case, notice: Notice, urgent: bool) -> dict:
    """The body every channel renders: the event, the case, the step (the webhook's JSON, ``url`` added
    when it is sent). A system note is sent in English as ``note`` and as its message (``note_message``:
    ``{"code", "params"}``, ``shared.words``), which the channels render in their own language."""
    step = notice.step
    message = note_message(step.note)
    return {"id": notice.id, "event": notice.event, "at": isoformat(step.at), "urgent": urgent,
            "case": {"id": case.id, "number": case.number, "category": case.category, "severity": case.severity,
                     "status": str(case.status), "level": int(case.level), "owners": case.owners.to_json(),
                     "deadline": isoformat(case.deadline) if case.deadline else None},
            "step": {"type": str(step.type), "level": int(step.level), "actor": step.actor,
                     "note": note_text(step.note),
                     **({"note_message": message.to_json()} if message is not None else {})},
            "to": [{"unit": a.unit, "role": a.role} for a in notice.addressees]}
