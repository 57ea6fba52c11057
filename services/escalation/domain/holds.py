"""Actions that hold or stretch the clock: extension (延期) and suspension (挂账).

- An **extension** is requested by the owner (an amount and a reason) and approved or refused by
  the level above (``permissions.require_level_above``). One request waits at a time; it lapses
  when the case changes level or is resolved. An approved amount is added to the current deadline,
  counted from that deadline even when approved after it (the time model's rule). The case's policy
  caps the number of approved extensions and their total length; a request beyond the count is
  refused as a state (409), one beyond the total length as an argument (422).
- **Suspension** (挂账, for a matter that cannot be handled now: a budget, a court) stops the clock, so
  like an extension it is **approved by the level above** (``permissions.require_level_above``): the
  owner's ``suspend`` asks, with a reason (a ``suspension_requested`` step; the clock keeps running),
  and ``approve_suspension`` suspends it from that moment, or ``refuse_suspension`` says no. One request
  waits at a time and lapses as an extension's does. The case's policy may let the owners of some
  levels suspend at once (``suspend_without_approval``, e.g. ``["hq"]``; default: none). A suspended
  case's deadline is cleared and the time that was left kept; on resume the deadline is resume time +
  that time left. For a working-time limit the time left is working time, consumed from the resume
  instant: suspended time outside working periods changes nothing. Only a working case (open,
  acknowledged, rework) is suspended; the owner resumes it.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from services.escalation.domain.cases import WORKING, Case, ExtensionRequest, SuspensionRequest, set_deadline
from services.escalation.domain.deadlines import UNITS, Limit, time_left
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, require_status, required_text
from services.escalation.domain.permissions import Actor, require_level_above, require_owner
from services.escalation.domain.timeline import Outcome, StepType, record
from shared.vocabulary import Status


def request_extension(case: Case, actor: Actor, now: datetime, *, amount: Limit | Mapping, reason: str) -> Outcome:
    """The owner asks the level above for ``amount`` more time (``Limit`` or ``{"amount", "unit"}``)."""
    require_owner(actor, case, "ask for an extension")
    require_status(case.status, WORKING, "be extended")
    if case.pending_extension is not None:
        raise InvalidTransition("case.extension_waiting")
    _check_count(case)
    amount = _amount(amount)
    reason = required_text(reason, "a reason", "reason")
    _check_total(case, amount)
    case.pending_extension = ExtensionRequest(amount, reason, actor.user, now)
    return record(case, StepType.EXTENSION_REQUESTED, actor.user, now, reason, detail={"amount": amount.to_dict()})


def approve_extension(case: Case, actor: Actor, now: datetime, *, note: str = "") -> Outcome:
    """The level above grants the waiting request: the deadline moves by its amount."""
    require_level_above(actor, case, "approve an extension")
    request = _waiting(case)
    _check_count(case)
    _check_total(case, request.amount)
    case.extensions += (request.amount,)
    case.pending_extension = None
    set_deadline(case, case.deadline_after(case.deadline, request.amount), now)
    return record(case, StepType.EXTENDED, actor.user, now, (note or "").strip() or request.reason,
                  detail={"amount": request.amount.to_dict()})


def refuse_extension(case: Case, actor: Actor, now: datetime, *, reason: str) -> Outcome:
    """The level above refuses the waiting request; the deadline stays."""
    require_level_above(actor, case, "refuse an extension")
    _waiting(case)
    reason = required_text(reason, "a reason", "reason")
    case.pending_extension = None
    return record(case, StepType.EXTENSION_REFUSED, actor.user, now, reason)


def suspend(case: Case, actor: Actor, now: datetime, *, reason: str) -> Outcome:
    """挂账: the owner asks the level above to stop the clock (``approve_suspension``), or stops it at once
    where the case's policy lets the owner of its level (``suspend_without_approval``)."""
    require_owner(actor, case, "suspend it")
    require_status(case.status, WORKING, "be suspended")
    if case.pending_suspension is not None:
        raise InvalidTransition("case.suspension_waiting")
    reason = required_text(reason, "a reason", "reason")
    if int(case.level) in case.policy.suspend_without_approval:
        return _suspend(case, actor, now, reason)
    case.pending_suspension = SuspensionRequest(reason, actor.user, now)
    return record(case, StepType.SUSPENSION_REQUESTED, actor.user, now, reason)


def approve_suspension(case: Case, actor: Actor, now: datetime, *, note: str = "") -> Outcome:
    """The level above grants the waiting request: the clock stops now, keeping the time left."""
    require_level_above(actor, case, "approve a suspension")
    request = _waiting_suspension(case)
    case.pending_suspension = None
    return _suspend(case, actor, now, (note or "").strip() or request.reason,
                    detail={"requested_by": request.requested_by})


def refuse_suspension(case: Case, actor: Actor, now: datetime, *, reason: str) -> Outcome:
    """The level above refuses the waiting request; the clock keeps running."""
    require_level_above(actor, case, "refuse a suspension")
    _waiting_suspension(case)
    reason = required_text(reason, "a reason", "reason")
    case.pending_suspension = None
    return record(case, StepType.SUSPENSION_REFUSED, actor.user, now, reason)


def _suspend(case: Case, actor: Actor, now: datetime, note: str, detail: Mapping | None = None) -> Outcome:
    """Stop the clock, keeping the time left (none if the deadline has passed)."""
    left = time_left(case.deadline, now, case.policy.limit(case.level).unit, case.policy.calendar)
    case.held_status, case.time_left, case.status = case.status, left, Status.SUSPENDED
    set_deadline(case, None, now, keep_flags=True)
    return record(case, StepType.SUSPENDED, actor.user, now, note, detail=detail)


def _waiting_suspension(case: Case) -> SuspensionRequest:
    require_status(case.status, WORKING, "have a suspension decided")
    if case.pending_suspension is None:
        raise InvalidTransition("case.no_suspension_waiting")
    return case.pending_suspension


def resume(case: Case, actor: Actor, now: datetime, *, note: str = "") -> Outcome:
    """The owner restarts the clock: deadline = now + the time that was left."""
    require_owner(actor, case, "resume it")
    require_status(case.status, frozenset({Status.SUSPENDED}), "be resumed")
    left = case.time_left if case.time_left is not None else case.policy.limit(case.level)
    case.status, case.held_status, case.time_left = case.held_status or Status.OPEN, None, None
    set_deadline(case, case.deadline_after(now, left), now)
    return record(case, StepType.RESUMED, actor.user, now, (note or "").strip())


def _waiting(case: Case) -> ExtensionRequest:
    require_status(case.status, WORKING, "have an extension decided")
    if case.pending_extension is None:
        raise InvalidTransition("case.no_extension_waiting")
    return case.pending_extension


def _check_count(case: Case) -> None:
    if len(case.extensions) >= case.policy.max_extensions:
        raise InvalidTransition("case.extensions_used", count=case.policy.max_extensions)


def _check_total(case: Case, amount: Limit) -> None:
    total = sum(limit.seconds for limit in case.extensions) + amount.seconds
    if total > case.policy.max_extension_total.seconds:
        cap = case.policy.max_extension_total
        raise InvalidArgument("case.extensions_cap", field="amount", amount=f"{cap.amount:g}", unit=cap.unit)


def _amount(value: object) -> Limit:
    try:
        amount = value if isinstance(value, Limit) else Limit.from_dict(value)
    except (ValueError, TypeError, KeyError):
        raise InvalidArgument("case.amount_shape", field="amount", units="|".join(UNITS)) from None
    if amount.amount <= 0:
        raise InvalidArgument("case.amount_positive", field="amount")
    return amount
