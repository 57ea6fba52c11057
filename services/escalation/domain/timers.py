"""What happens to a case without a person acting: its deadline passes, or a new area version
changes its owners.

Deadline rules (the README's "four-level closed loop"):

- **Levels 1–3**: at the deadline the case moves up to the first owned level above, with status
  ``open`` (the new owner must acknowledge) and that level's limit **dated from the deadline that
  was missed**, not from when the tick fired, so a scheduler outage gives no case extra time. A case
  whose later deadlines have also passed climbs through them in one call, one ``escalated`` step
  each, every step with ``scheduled_at`` = the missed deadline and ``at`` = the firing time.
- **Level 4**: the case is flagged ``overdue`` once (an ``overdue`` step, event ``case.overdue``)
  and keeps its deadline.
- **Warnings**: before the deadline, at each threshold of the policy (say 50 % and 80 %
  of the level's limit), a ``warning`` step (event ``case.warning``) fires once, its ``scheduled_at``
  the instant the threshold was reached; warnings whose deadline has also passed are skipped (the
  escalation says more).
- **Verification**: a missed verification deadline is flagged to the station once (an ``overdue``
  step, event ``case.verification_overdue``); level, status and deadline stay, and the grid
  worker may still verify.
- **Acceptance** (立案): a report waiting past its acceptance time limit is flagged once (an
  ``acceptance_overdue`` step) and keeps waiting; it has no ladder to climb until it is accepted.
- **Suspended**, **closed** (and refused, voided, merged) cases have no deadline, so they never escalate.
- A tick carries the ``timer_token`` it read; if the deadline changed since, the tick is stale and
  does nothing (after Grafana OnCall's ``active_escalation_id``).
"""
from __future__ import annotations

from datetime import datetime

from services.escalation.domain import departments, ownership, urges
from services.escalation.domain.cases import AWAITING_VERIFICATION, WORKING, Case, lapse_requests, set_deadline
from services.escalation.domain.deadlines import is_late
from services.escalation.domain.timeline import SYSTEM, Outcome, StepType, record
from shared import words
from shared.owners import Owners
from shared.vocabulary import Level, Status


def escalate_due(case: Case, now: datetime, token: int) -> Outcome:
    """Fire every deadline of ``case`` that has passed at ``now``; empty if the tick is stale
    (``token`` is not the case's ``timer_token``) or nothing is due (``case.is_due(now)``)."""
    if token != case.timer_token or not case.is_due(now):
        return Outcome()
    outcome = departments.flag_overdue(case, now) + urges.flag_overdue(case, now)
    if case.status == Status.PENDING_ACCEPTANCE:
        if case.overdue or not is_late(case.deadline, now):
            return outcome
        case.overdue = True
        return outcome + record(case, StepType.ACCEPTANCE_OVERDUE, SYSTEM, now,
                                words.note("note.acceptance_overdue"), scheduled_at=case.deadline)
    if case.status in AWAITING_VERIFICATION:
        if case.verification_overdue or not is_late(case.deadline, now):
            return outcome
        case.verification_overdue = True
        return outcome + record(case, StepType.OVERDUE, SYSTEM, now,
                                words.note("note.verification_overdue"),
                                event="case.verification_overdue", scheduled_at=case.deadline)
    if case.status not in WORKING:
        return outcome  # dispatched to a lead department: its lateness is flagged, the ladder waits
    outcome += _warn(case, now)
    while case.level < Level.HQ and is_late(case.deadline, now):
        missed = case.deadline
        case.level, case.status = case.owners.owned_level(case.level.up), Status.OPEN
        lapse_requests(case)
        set_deadline(case, case.deadline_after(missed, case.policy.limit(case.level)), now, restart=missed)
        outcome += record(case, StepType.ESCALATED, SYSTEM, now, words.note("note.deadline_passed"),
                          scheduled_at=missed)
    if outcome.steps and outcome.steps[-1].type == StepType.ESCALATED:
        outcome += _warn(case, now)  # the new level's clock started at the missed deadline: its passed warnings
    if case.level == Level.HQ and is_late(case.deadline, now) and not case.overdue:
        case.overdue = True
        outcome += record(case, StepType.OVERDUE, SYSTEM, now, words.note("note.deadline_passed_at_hq"),
                          scheduled_at=case.deadline)
    return outcome


def _warn(case: Case, now: datetime) -> Outcome:
    """Fire the pending warnings that are due at ``now`` and still before the deadline."""
    outcome = Outcome()
    while case.warnings and is_late(case.warnings[0][1], now):
        (threshold, at), case.warnings = case.warnings[0], case.warnings[1:]
        if is_late(case.deadline, now):
            continue
        case.warned = threshold
        outcome += record(case, StepType.WARNING, SYSTEM, now, words.note("note.warning", share=threshold),
                          scheduled_at=at, detail={"threshold": threshold})
    return outcome


def rerouted(case: Case, owners: Owners, now: datetime, *, basis: int | None = None) -> Outcome:
    """A new area version changed the case's owners: ``ownership.reroute`` (the one rule for owners);
    ``basis``: the case revision the proposal was computed from."""
    return ownership.reroute(case, owners, now, basis=basis)
