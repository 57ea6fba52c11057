"""Escalation's use cases: open a dispatched case, keep the hierarchy, move a transferred case,
escalate the cases whose deadline passed."""
from __future__ import annotations

from services.escalation.domain.cases import Case, Step
from shared.clock import Clock
from shared.consumer import Unavailable
from shared.messages import events
from shared.policy import Policy
from shared.uow import UnitOfWork
from shared.vocabulary import AREA_LEVELS, Level


def _areas(owners: events.Owners) -> dict[str, dict | None]:
    return {name: ({"id": ref.id, "name": ref.name} if (ref := getattr(owners, name)) else None)
            for name in AREA_LEVELS}


def open_cases(messages: list[events.CaseDispatched], uow: UnitOfWork, *, policy: Policy, clock: Clock) -> None:
    """``case.dispatched`` → each case opens at its start level with that level's deadline."""
    now = clock.now()
    with uow:
        uow.store.add([Case.open(id=m.case_id, number=m.number, category=m.category, severity=m.severity,
                                 areas=_areas(m.owners), start_level=m.start_level.area,
                                 hours=(policy.categories.get(m.category) or policy.categories["other"]).hours,
                                 now=now, triage=m.triage) for m in messages])
        uow.commit()


def keep_areas(message: events.AreasPublished, uow: UnitOfWork) -> None:
    """``areas.published`` → escalation's own copy of the hierarchy."""
    with uow:
        uow.store.replace_areas(message.version, message.areas)
        uow.commit()


def transfer_case(message: events.CaseTransferred, uow: UnitOfWork, *, clock: Clock) -> None:
    """``case.transferred`` → new owners (and, for a staff transfer, a new level and deadline)."""
    now = clock.now()
    with uow:
        case = uow.store.get(message.case_id, for_update=True)
        if case is None:  # its case.dispatched is still on the way (another queue): hold and retry
            raise Unavailable(f"case {message.case_id} has not opened yet")
        level = message.level.area if message.level is not None else None
        if case.transfer(_areas(message.owners), level, now, actor=message.actor, reason=message.reason):
            uow.store.save(case, now)
        uow.commit()


def escalate_due(limit: int, uow: UnitOfWork, *, clock: Clock) -> int:
    """Escalate every case whose deadline has passed, at most ``limit`` in one unit of work; returns
    how many. Cases are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several schedulers
    can run; a tick that lost the race finds nothing to do."""
    now = clock.now()
    with uow:
        due = uow.store.claim_due(now, limit)
        for case in due:
            step = case.escalate(now)
            uow.store.save(case, now)
            uow.add(_changed(events.CaseEscalated, case, step))
        uow.commit()
    return len(due)


def _changed(kind: type[events.CaseChanged], case: Case, step: Step) -> events.CaseChanged:
    owner = case.owner
    return kind(case_id=case.id, status=case.status, level=Level(case.level),
                owner=events.OwnerRef(Level(owner.level), owner.area_id, owner.area_name),
                at=step.at, actor=step.actor, reason=step.note)
