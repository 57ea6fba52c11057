"""A case in the four-level closed loop (四级闭环, see PRODUCT.md): its state and how it opens. A case is
handled at the first level at or above a given one that has an owner (``Owners.owned_level``).

Level 1 is the grid worker, 2 the work station, 3 the sub-center, 4 headquarters. The state changes
only through the functions in ``actions.py`` (staff actions, by name) and ``timers.py`` (deadline
and re-routing); each returns an ``Outcome``: the timeline entries (``Step``) and the bus events it
produced, which the handler saves and publishes in one transaction. The case does not keep its
timeline; the store does.

Statuses (``shared.vocabulary.Status``): ``open`` → ``acknowledged`` → (resolve) ``verifying`` →
``closed``, or ``rework`` at the level that resolved it; ``suspended`` holds the clock. The domain
never leaves a case in ``resolved``: resolving records a ``resolved`` step and the case awaits
verification as ``verifying`` (a stored ``resolved`` is treated as ``verifying``). A report that needs
acceptance (立案, ``acceptance.py``) opens ``pending_acceptance`` with the acceptance time limit and no
ladder yet; it ends ``refused``, ``voided`` or ``merged`` unless it is accepted (then ``open``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.escalation.domain.deadlines import (
    WORKING_UNITS,
    Limit,
    TimePolicy,
    deadline,
    deadline_basis,
    is_late,
    shift_warnings,
    stretch_warnings,
    warning_times,
)
from services.escalation.domain.errors import InvalidArgument
from services.escalation.domain.timeline import SYSTEM, Outcome, Step, StepType, record
from shared import words
from shared.owners import OwnerRef, Owners
from shared.vocabulary import Level, Status
from shared.words import Message

#: Statuses whose clock runs toward the level's deadline (the deadline is for resolving).
WORKING = frozenset({Status.OPEN, Status.ACKNOWLEDGED, Status.REWORK})
#: Statuses whose clock runs toward the verification deadline.
AWAITING_VERIFICATION = frozenset({Status.RESOLVED, Status.VERIFYING})
#: Statuses nothing more happens in: closed after verification, or not a case at all (不予立案, 作废, merged).
ENDED = frozenset({Status.CLOSED, Status.REFUSED, Status.VOIDED, Status.MERGED})


@dataclass(frozen=True)
class ExtensionRequest:
    """A pending 延期 request, awaiting the level above."""

    amount: Limit
    reason: str
    requested_by: str
    requested_at: datetime

    def to_dict(self) -> dict:
        return {"amount": self.amount.to_dict(), "reason": self.reason, "requested_by": self.requested_by,
                "requested_at": self.requested_at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> ExtensionRequest:
        return cls(Limit.from_dict(data["amount"]), data["reason"], data["requested_by"],
                   datetime.fromisoformat(data["requested_at"]))


@dataclass(frozen=True)
class SuspensionRequest:
    """A pending 挂账 request, awaiting the level above."""

    reason: str
    requested_by: str
    requested_at: datetime

    def to_dict(self) -> dict:
        return {"reason": self.reason, "requested_by": self.requested_by,
                "requested_at": self.requested_at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> SuspensionRequest:
        return cls(data["reason"], data["requested_by"], datetime.fromisoformat(data["requested_at"]))


@dataclass
class Case:
    """A case's current state. ``owners`` are its areas at each level (``shared.owners.Owners``; a
    point in no grid has no grid owner), headquarters always. ``deadline`` is an aware UTC datetime,
    or None when closed or suspended. ``timer_token`` grows by one whenever the deadline changes, so a
    scheduler tick read under an older token is stale."""

    id: str
    number: str
    category: str
    severity: str
    owners: Owners
    policy: TimePolicy
    opened_at: datetime
    level: Level
    status: Status = Status.OPEN
    deadline: datetime | None = None
    timer_token: int = 0
    overdue: bool = False  # level 4's deadline passed (flagged once per deadline)
    verification_overdue: bool = False  # the verification deadline passed (flagged to the station once)
    triage: bool = False  # a point in no grid: a human at the level that holds it decides
    resolved_level: Level | None = None  # the level that resolved it last: rework comes back here
    reworks: int = 0
    extensions: tuple[Limit, ...] = ()  # approved extensions, oldest first
    pending_extension: ExtensionRequest | None = None
    pending_suspension: SuspensionRequest | None = None  # 挂账 asked, awaiting the level above
    held_status: Status | None = None  # while suspended: the status to resume to
    time_left: Limit | None = None  # while suspended: what remained of the clock
    clock_start: datetime | None = None  # when the level's clock last started (or resumed; suspended: stopped)
    warnings: tuple[tuple[float, datetime], ...] = ()  # pending pre-deadline warnings: (threshold, when)
    warned: float | None = None  # the highest threshold warned of at the current level (once each)
    #: functional departments on the case (``domain.departments.Assignment``), in the order assigned
    assignments: tuple = ()
    resolved_department: str | None = None  # the lead department whose fix awaits (or failed) verification
    urges: tuple = ()  # 督办 on record (``domain.urges.Urge``), oldest first
    deadline_basis: str | None = None  # official, provisional or calendar_gap (deadlines.deadline_basis)
    resolved_by: str | None = None  # who resolved it last (never its verifier: permissions.require_verifier)
    merged_into: str | None = None  # merged: the case it duplicates, whose status it follows
    #: 承办人: the person of the unit holding the case who handles it; valid while that unit
    #: (``assignee_unit``, an area id) still holds the case (``handler``)
    assignee: str | None = None
    assignee_unit: str | None = None
    #: the case's revision (its ETag) saved by the last staff transfer (转办), None if never transferred
    #: since this was recorded: a re-route dispatch computed before it is stale (``ownership.reroute``)
    transferred_revision: int | None = None

    @property
    def owner(self) -> OwnerRef:
        """The owner at the case's current level."""
        return self.owners.owner(self.level)

    @property
    def handler(self) -> str | None:
        """The named handler (承办人) of the unit holding the case now, or None: an assignee made while
        another unit held it (before an escalation, a return or a transfer) no longer handles it."""
        if self.assignee and self.status not in ENDED and self.assignee_unit == self.owner.area_id:
            return self.assignee
        return None

    @property
    def due_at(self) -> datetime | None:
        """When the scheduler must next call ``timers.escalate_due``: the next pre-deadline warning, the
        deadline, or an active department assignment's deadline, whichever is earliest, unless nothing
        more can happen (closed, suspended, or each passing already flagged)."""
        due = self._ladder_due()
        if self.status not in ENDED | {Status.SUSPENDED}:  # a suspension holds the departments too
            pending = [a.deadline for a in self.assignments if a.active and not a.overdue and a.deadline]
            pending += [u.due for u in self.urges if u.answered_at is None and not u.overdue]
            if pending:
                return min(pending) if due is None else min(due, *pending)
        return due

    def _ladder_due(self) -> datetime | None:
        if self.status == Status.PENDING_ACCEPTANCE:  # the acceptance time limit, flagged once
            return None if self.overdue else self.deadline
        if self.status in WORKING and not self.overdue:
            if self.warnings and self.deadline is not None:
                return min(self.warnings[0][1], self.deadline)
            return self.deadline
        if self.status in AWAITING_VERIFICATION and not self.verification_overdue:
            return self.deadline
        return None

    def is_due(self, now: datetime) -> bool:
        """Whether a warning or the deadline is due at ``now`` (the scheduler's rule)."""
        return is_late(self.due_at, now)

    def is_past_deadline(self, now: datetime) -> bool:
        """Whether the deadline that matters (working or awaiting verification) has passed at ``now``."""
        return self.due_at is not None and is_late(self.deadline, now)

    def deadline_after(self, start: datetime, limit: Limit) -> datetime:
        """``deadlines.deadline`` in this case's frozen working calendar."""
        return deadline(start, limit, self.policy.calendar)


def open_case(*, id: str, number: str, category: str, severity: str, owners: Owners,
              start_level: Level | int | str, policy: TimePolicy, now: datetime,
              triage: bool = False, location_unverified: bool = False,
              pending: bool = False) -> tuple[Case, Outcome]:
    """A case opens at the first owned level at or above ``start_level``, with that level's deadline;
    ``pending``: it waits for acceptance (立案) instead, with the policy's acceptance time limit and no
    ladder until it is accepted (``acceptance.accept``). Its ``opened`` step notes a triage point, or
    a location the reporter's phone could not fix (routed to the reporter's own grid: the owner checks
    where it really is), or that it awaits acceptance."""
    if owners.hq is None:
        raise InvalidArgument("case.owners_hq", field="owners")
    level = owners.owned_level(start_level)
    case = Case(id=id, number=number, category=category, severity=severity, owners=owners, policy=policy,
                opened_at=now, level=level, triage=triage,
                status=Status.PENDING_ACCEPTANCE if pending else Status.OPEN)
    limit = policy.acceptance_limit if pending else policy.limit(level)
    set_deadline(case, deadline(now, limit, policy.calendar), now, restart=now)
    notes = [Message("note.awaiting_acceptance")] if pending else []
    notes += [Message("note.triage")] if triage else []
    if location_unverified:
        notes.append(Message("note.location_unverified"))
    return case, record(case, StepType.OPENED, SYSTEM, now, words.note("note.opened", parts=notes) if notes else "")


def set_deadline(case: Case, when: datetime | None, now: datetime, *, keep_flags: bool = False,
                 restart: datetime | None = None) -> None:
    """Every deadline change goes through here: the timer token moves on, and a deadline that is
    not passed (or none) clears the overdue flags; a still-passed one keeps them (flagged once).
    Suspension keeps them: a suspended overdue case is still overdue. ``deadline_basis`` says what a
    working-time deadline rests on (official calendar files, statutory rules only, or no source).

    Warnings are shares of the clock time worked at a level, net of suspension, and fire once per
    level. ``restart`` is given when a level's clock starts afresh (opening, a new level, rework): the
    level's thresholds are placed over the span from ``restart`` to ``when``. A suspension keeps the
    pending warnings as they are and notes when the clock stopped (``clock_start``); the resume
    moves each by the suspended span, so it fires after the clock time it still had to wait. An
    extension moves each threshold ``p`` by ``p`` × the time added. Only a working case is warned."""
    previous, case.deadline = case.deadline, when
    case.timer_token += 1
    if not keep_flags and not is_late(when, now):
        case.overdue = case.verification_overdue = False
    unit = (case.policy.verification if case.status in AWAITING_VERIFICATION
            else case.policy.acceptance_limit if case.status == Status.PENDING_ACCEPTANCE
            else case.policy.limit(case.level)).unit
    calendar = case.policy.calendar
    if when is None:
        case.deadline_basis = None
    elif unit in WORKING_UNITS or any(x.working for x in case.extensions):
        case.deadline_basis = deadline_basis(min(x for x in (now, restart, previous, when) if x), when, calendar)
    else:
        case.deadline_basis = None
    if restart is not None:
        case.clock_start, case.warned = restart, None
        case.warnings = (warning_times(restart, when, unit, case.policy.warnings_at(case.level), calendar)
                         if when is not None and case.status in WORKING else ())
    elif case.status == Status.SUSPENDED:
        case.clock_start = now  # the pending warnings wait for the resume
    elif when is None or case.status not in WORKING:
        case.warnings = ()
    elif previous is None:  # resumed
        pending = [p for p in case.policy.warnings_at(case.level) if case.warned is None or p > case.warned]
        if case.warnings or not pending:
            case.warnings = shift_warnings(case.warnings, case.clock_start or now, now, unit, calendar)
        else:  # suspended before warnings were kept through a suspension: placed as they were then
            case.warnings = warning_times(case.clock_start or now, when, unit, pending, calendar)
        case.clock_start = now
    else:  # an extension
        case.warnings = stretch_warnings(case.warnings, previous, when, unit, calendar)


def touch(case: Case) -> None:
    """What the scheduler waits for changed but the deadline did not (a department's or an urge's own due
    time): the timer token moves on, so a tick read before the change does nothing."""
    case.timer_token += 1


def lapse_requests(case: Case) -> None:
    """The requests waiting for the level above (an extension, a suspension) lapse: the case changed level,
    was resolved or went to a department."""
    case.pending_extension = case.pending_suspension = None


def end(case: Case, status: Status, now: datetime) -> None:
    """The case ends (``status``: refused, voided or merged) without a fix: no deadline any more, and a
    request waiting for the level above (an extension, a suspension) lapses with it."""
    case.status = status
    lapse_requests(case)
    set_deadline(case, None, now)


def move(case: Case, level: Level, status: Status, now: datetime) -> None:
    """The case restarts at ``level`` with that level's full limit; a pending request lapses."""
    case.level, case.status = level, status
    lapse_requests(case)
    set_deadline(case, case.deadline_after(now, case.policy.limit(level)), now, restart=now)



__all__ = ["AWAITING_VERIFICATION", "ENDED", "SYSTEM", "WORKING", "Case", "ExtensionRequest", "Step",
           "SuspensionRequest", "end", "lapse_requests", "move", "open_case", "set_deadline", "touch"]
