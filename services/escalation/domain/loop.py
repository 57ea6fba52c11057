"""The staff actions of the closed loop: acknowledge, resolve, verify (核查) and reopen (the changes of
owner — escalate, return, transfer, re-route — are ``ownership.py``'s). Each takes ``(case, actor, now,
**arguments)``, checks who (403), then the state (409), then the arguments (422), and only then changes
the case; it returns the ``Outcome`` (steps and events). Registered by name in ``actions.ACTIONS``.
"""
from __future__ import annotations

from datetime import datetime

from services.escalation.domain import departments
from services.escalation.domain.cases import (
    AWAITING_VERIFICATION,
    WORKING,
    Case,
    lapse_requests,
    move,
    set_deadline,
)
from services.escalation.domain.errors import (
    InvalidArgument,
    InvalidTransition,
    NotAllowed,
    photo_ids,
    require_status,
    required_text,
)
from services.escalation.domain.permissions import (
    Actor,
    require_oversight,
    require_owner,
    require_verifier,
    resolved_detail,
)
from services.escalation.domain.timeline import Outcome, StepType, record
from shared.vocabulary import Level, Status


def acknowledge(case: Case, actor: Actor, now: datetime, *, note: str = "") -> Outcome:
    """The owner takes the case on (open or rework → acknowledged). The clock keeps running."""
    require_owner(actor, case, "acknowledge it")
    require_status(case.status, frozenset({Status.OPEN, Status.REWORK}), "be acknowledged")
    case.status = Status.ACKNOWLEDGED
    return record(case, StepType.ACKNOWLEDGED, actor.user, now, note)


def resolve(case: Case, actor: Actor, now: datetime, *, note: str, photos: list | tuple = ()) -> Outcome:
    """The owner reports what was done (with after-photos: intake photo ids of kind ``after``); the case
    awaits on-site verification (``verifying``) with the verification deadline, and remembers the level
    and the person that resolved it (for a rework, and so that nobody verifies their own fix). A grid
    worker's fix on the spot (就地解决, level 1) is verified by the station (``verifying_level``)."""
    require_owner(actor, case, "resolve it")
    require_status(case.status, WORKING, "be resolved")
    note = required_text(note, "what was done", "note")
    photos = photo_ids(photos)
    case.status, case.resolved_level = Status.VERIFYING, case.level
    lapse_requests(case)
    case.resolved_department, case.resolved_by = None, actor.user
    set_deadline(case, case.deadline_after(now, case.policy.verification), now)
    return record(case, StepType.RESOLVED, actor.user, now, note, detail=resolved_detail(case, photos))


def require_may_verify(actor: Actor, case: Case) -> None:
    """What ``verify`` asks before its arguments: the case awaits verification and ``actor`` is its
    verifier (``permissions.require_verifier``); raises ``NotAllowed`` or ``InvalidTransition``."""
    require_verifier(actor, case)
    require_status(case.status, AWAITING_VERIFICATION, "be verified")


def may_verify(actor: Actor, case: Case) -> bool:
    """Whether ``actor`` may verify ``case`` now (``require_may_verify``): a case list's ``can_verify``,
    the same answer as the actions a case's own page lists, without trying the action on a copy."""
    try:
        require_may_verify(actor, case)
    except (NotAllowed, InvalidTransition):
        return False
    return True


def verify(case: Case, actor: Actor, now: datetime, *, passed: bool, note: str = "") -> Outcome:
    """核查 by the grid worker of the case's grid: passed closes the case; failed (note required)
    sends it to rework at the level that resolved it, with that level's full limit, counted."""
    require_may_verify(actor, case)
    if not isinstance(passed, bool):
        raise InvalidArgument("case.passed_boolean", field="passed")
    note = required_text(note, "what is still wrong", "note") if not passed else (note or "").strip()
    verified = record(case, StepType.VERIFIED, actor.user, now, note, detail={"passed": passed})
    if passed:
        case.status = Status.CLOSED
        set_deadline(case, None, now)
        return verified + record(case, StepType.CLOSED, actor.user, now)
    case.reworks += 1
    if case.resolved_department is not None:  # a department's fix: back to that department (返工)
        departments.rework(case, now)
    else:
        move(case, _resolver(case), Status.REWORK, now)
    return verified + record(case, StepType.REWORKED, actor.user, now, note, detail={"reworks": case.reworks})


def reopen(case: Case, actor: Actor, now: datetime, *, reason: str) -> Outcome:
    """A closed case opens again, by command, a supervisor or an admin, at the level that resolved
    it, with that level's full limit. It must be verified again before it closes."""
    require_oversight(actor, "reopen a case")
    require_status(case.status, frozenset({Status.CLOSED}), "be reopened")
    reason = required_text(reason, "a reason", "reason")
    move(case, _resolver(case), Status.OPEN, now)
    return record(case, StepType.REOPENED, actor.user, now, reason)


def _resolver(case: Case) -> Level:
    """The level that resolved the case, or the first owned one above it if a re-route took its owner."""
    return case.owners.owned_level(case.resolved_level or case.level)

