"""Escalation's use cases: open a dispatched case, escalate the cases whose deadline passed."""
from __future__ import annotations

import sqlalchemy as sa

from services.escalation import store
from services.escalation.domain.cases import Case, Step
from shared import outbox
from shared.clock import Clock, isoformat
from shared.consumer import Delivery, Unavailable
from shared.messages import Envelope, make_message
from shared.policy import LEVEL_NAMES, Policy

LEVEL_KEYS = tuple(LEVEL_NAMES.values())


def open_cases(db: sa.Connection, deliveries: list[Delivery], *, policy: Policy, clock: Clock) -> None:
    """``case.dispatched`` → each case opens at its start level with that level's deadline."""
    now = clock.now()
    cases = []
    for delivery in deliveries:
        payload = delivery.payload
        category = policy.categories.get(payload["category"]) or policy.categories["other"]
        cases.append(Case.open(id=payload["case_id"], number=payload["number"], category=payload["category"],
                               severity=payload["severity"], areas={k: payload.get(k) for k in LEVEL_KEYS},
                               start_level=payload["start_level"], hours=category.hours, now=now,
                               triage=payload["triage"]))
    store.insert(db, cases, now)


def keep_areas(db: sa.Connection, envelope: Envelope, payload: dict) -> None:
    """``areas.published`` → escalation's own copy of the hierarchy."""
    store.replace_areas(db, payload["version"], payload["areas"])


def transfer_case(db: sa.Connection, envelope: Envelope, payload: dict, *, clock: Clock) -> None:
    """``case.transferred`` → new owners (and, for a staff transfer, a new level and deadline)."""
    row = store.get(db, payload["case_id"], for_update=True)
    if row is None:  # its case.dispatched is still on the way (another queue): hold and retry
        raise Unavailable(f"case {payload['case_id']} has not opened yet")
    case = store.from_row(row)
    now = clock.now()
    if case.transfer({k: payload.get(k) for k in LEVEL_KEYS}, payload.get("level"), now, actor=payload["actor"],
                     reason=payload["reason"]) is not None:
        store.update(db, case, now)


def escalate_due(engine: sa.Engine, clock: Clock, *, limit: int = 500) -> int:
    """Escalate every case whose deadline has passed, at most ``limit`` per transaction.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several schedulers can
    run; the row is re-read under the lock, so a tick that lost the race finds nothing to do.
    """
    now = clock.now()
    with engine.begin() as db:
        rows = store.claim_due(db, now, limit)
        for row in rows:
            case = store.from_row(row)
            step = case.escalate(now)
            store.update(db, case, now)
            _publish(db, case, step, "case.escalated")
    return len(rows)


def _publish(db: sa.Connection, case: Case, step: Step, type_: str) -> None:
    owner = case.owner
    outbox.add(db, make_message(type_, {
        "case_id": case.id, "status": case.status, "level": case.level,
        "owner": {"level": owner.level, "area_id": owner.area_id, "area_name": owner.area_name},
        "at": isoformat(step.at), "actor": step.actor, "reason": step.note,
    }, occurred_at=step.at, producer="escalation", correlation_id=case.id))
