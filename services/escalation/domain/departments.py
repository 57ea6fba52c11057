"""Linked handling (部门办理、联动处置): functional departments beside a case's geographic owner.

A department is assigned to a case (派遣) as its **lead** (主办) or a **co-handler** (协办): by the
policy when the case opens (its category's departments), or by staff at station level and above
(``assign_department``). Each assignment has its own deadline (the category × severity rule's
``department`` limit, in the case's working calendar) and states::

    assigned --acknowledge (签收)--> acknowledged --feedback (反馈)--> done | declined (退单)
        \\_____________________________feedback_______________________/

- While a **lead** works on it, the case is ``dispatched``: the geographic ladder's clock is held (the
  owner keeps watch and verifies on site). The lead's ``done`` sends the case to verification by the
  grid worker; a failed verification sends it back to the lead (返工) with a fresh deadline. The lead's
  ``declined`` sends the case back to whoever assigned it — the level of the staff who did, or command
  headquarters for the policy's assignment (the command center dispatches by policy) — open, with that
  level's full limit, to assign another.
- A co-handler's feedback is recorded; it does not move the case.
- A department past its deadline does **not** climb the ladder: the assignment is flagged ``overdue``
  once (``case.department_overdue``) and the command center sees it on its board.

Every function takes ``(case, actor, now, **arguments)`` like the other actions and returns the
``Outcome``; who (403), then state (409), then arguments (422). A department acting on a case not
assigned to it never gets here: the store does not show it the case (404).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.escalation.domain.cases import ENDED, WORKING, Case, lapse_requests, move, set_deadline, touch
from services.escalation.domain.deadlines import is_late
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed, photo_ids, required_text
from services.escalation.domain.permissions import ROLE_LEVEL, Actor, resolved_detail
from services.escalation.domain.timeline import SYSTEM, Outcome, StepType, record
from shared import words
from shared.departments import ROLES, Department
from shared.vocabulary import Level, Role, Status
from shared.words import word

#: Assignment states.
ASSIGNED, ACKNOWLEDGED, DONE, DECLINED = "assigned", "acknowledged", "done", "declined"
ACTIVE = frozenset({ASSIGNED, ACKNOWLEDGED})
OUTCOMES = (DONE, DECLINED)
#: Staff who may assign a department (the command center, and stations and sub-centers in their area).
ASSIGNERS = frozenset({Role.STATION, Role.SUBCENTER, Role.COMMAND})


@dataclass(frozen=True)
class Assignment:
    """One department's part in a case. Times are aware UTC datetimes; ``deadline`` is for feedback;
    ``assigned_level`` is where a declined lead sends the case back; ``photos`` are intake photo ids
    given with the feedback (after-photos)."""

    department: str
    name: str
    role: str
    status: str
    assigned_at: datetime
    assigned_by: str
    assigned_level: Level
    deadline: datetime | None
    overdue: bool = False
    acknowledged_at: datetime | None = None
    feedback_at: datetime | None = None
    note: str = ""
    reason: str = ""
    photos: tuple[str, ...] = ()
    assignee: str | None = None  # 承办人: the person of the department handling it

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"department": self.department, "name": self.name, "role": self.role, "status": self.status,
                "assigned_at": iso(self.assigned_at), "assigned_by": self.assigned_by,
                "assigned_level": int(self.assigned_level), "deadline": iso(self.deadline),
                "overdue": self.overdue, "acknowledged_at": iso(self.acknowledged_at),
                "feedback_at": iso(self.feedback_at), "note": self.note, "reason": self.reason,
                "photos": list(self.photos), "assignee": self.assignee}

    @classmethod
    def from_dict(cls, data: dict) -> Assignment:
        time = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
        return cls(data["department"], data.get("name", data["department"]), data["role"], data["status"],
                   time(data["assigned_at"]), data["assigned_by"], Level(data["assigned_level"]),
                   time(data.get("deadline")), bool(data.get("overdue")), time(data.get("acknowledged_at")),
                   time(data.get("feedback_at")), data.get("note") or "", data.get("reason") or "",
                   tuple(data.get("photos") or ()), data.get("assignee"))


def open_assignments(case: Case, departments: list[tuple[Department, str]], now: datetime) -> Outcome:
    """The policy's assignments of a case that just opened: ``departments`` as (department, role)
    pairs, the lead first; assigned by the command center (``system``)."""
    outcome = Outcome()
    for department, role in departments:
        outcome += _assign(case, department, role, SYSTEM, Level.HQ, now, "")
    return outcome


def assign_department(case: Case, actor: Actor, now: datetime, *, department: Department, role: str,
                      note: str = "") -> Outcome:
    """派遣: staff at station level and above assign ``department`` as ``role`` (``lead`` or ``co``).
    409 when it is already on the case (and has not declined), for a second lead, or for a lead on a
    case that is not being worked on (awaiting verification, suspended, closed)."""
    if actor.role not in ASSIGNERS:
        raise NotAllowed("department.not_assigner")
    if case.status in ENDED or case.status == Status.PENDING_ACCEPTANCE:
        raise InvalidTransition("department.case_ended", status=word("status", case.status))
    if role not in ROLES:
        raise InvalidArgument("department.unknown_role", field="role", role=str(role), choices=", ".join(ROLES))
    if not isinstance(department, Department):
        raise InvalidArgument("department.unknown", field="department")
    if any(a.department == department.id and a.status != DECLINED for a in case.assignments):
        raise InvalidTransition("department.already_assigned", department=department.id)
    if role == "lead":
        if lead_of(case) is not None:
            raise InvalidTransition("department.lead_exists")
        if case.status not in WORKING and case.status != Status.DISPATCHED:
            raise InvalidTransition("department.no_lead_now", status=word("status", case.status))
    return _assign(case, department, role, actor.user, ROLE_LEVEL[Role(actor.role)], now, (note or "").strip())


def _assign(case: Case, department: Department, role: str, by: str, level: Level, now: datetime,
            note: str) -> Outcome:
    when = case.deadline_after(now, case.policy.department_limit)
    assignment = Assignment(department.id, department.zh, role, ASSIGNED, now, by, level, when)
    case.assignments = (*case.assignments, assignment)
    if role == "lead" and case.status in WORKING:
        case.status = Status.DISPATCHED
        lapse_requests(case)
    _retime(case, now)
    text = f"{department.id} ({role})" + (f": {note}" if note else "")
    return record(case, StepType.DEPARTMENT_ASSIGNED, by, now, text,
                  detail={"department": department.id, "role": role})


def acknowledge(case: Case, actor: Actor, now: datetime, *, note: str = "") -> Outcome:
    """签收: the department takes on its assignment (assigned → acknowledged); 409 a second time."""
    index, assignment = _own(case, actor)
    if assignment.status != ASSIGNED:
        raise InvalidTransition("department.not_awaiting_ack", status=word("assignment", assignment.status))
    _set(case, index, replace(assignment, status=ACKNOWLEDGED, acknowledged_at=now))
    return record(case, StepType.DEPARTMENT_ACKNOWLEDGED, actor.user, now, (note or "").strip(),
                  detail={"department": assignment.department})


def feedback(case: Case, actor: Actor, now: datetime, *, outcome: str, note: str = "", reason: str = "",
             photos: list | tuple = ()) -> Outcome:
    """反馈: the department reports ``done`` (with what was done, ``note``, and after-photos' ids) or
    ``declined`` (退单, ``reason`` required: not this department's matter). A lead's ``done`` sends the
    case to verification; a lead's ``declined`` sends it back to whoever assigned it. 409 when the
    department has fed back already."""
    index, assignment = _own(case, actor)
    if assignment.status not in ACTIVE:
        raise InvalidTransition("department.fed_back", status=word("assignment", assignment.status))
    if outcome not in OUTCOMES:
        raise InvalidArgument("department.outcome", field="outcome", choices=", ".join(OUTCOMES))
    photos = photo_ids(photos)
    if outcome == DONE:
        note = required_text(note, "what was done", "note")
        reason = ""
    else:
        reason = required_text(reason, "why the department declines", "reason")
        note = (note or "").strip()
    _set(case, index, replace(assignment, status=outcome, feedback_at=now, note=note, reason=reason,
                              photos=tuple(photos)))
    step = StepType.DEPARTMENT_DONE if outcome == DONE else StepType.DEPARTMENT_DECLINED
    result = record(case, step, actor.user, now, note if outcome == DONE else reason,
                    detail={"department": assignment.department, "role": assignment.role})
    if assignment.role == "lead" and case.status == Status.DISPATCHED:
        if outcome == DONE:
            case.status, case.resolved_level = Status.VERIFYING, case.level
            case.resolved_department, case.resolved_by = assignment.department, actor.user
            set_deadline(case, case.deadline_after(now, case.policy.verification), now)
            result += record(case, StepType.RESOLVED, actor.user, now, note, detail=resolved_detail(case, photos))
        else:
            back = case.owners.owned_level(assignment.assigned_level)
            move(case, back, Status.OPEN, now)
            _retime(case, now)
            result += record(case, StepType.RETURNED, SYSTEM, now, words.note(
                "note.department_declined", department=assignment.department, level=int(back)))
    else:
        _retime(case, now)
    return result


def rework(case: Case, now: datetime) -> None:
    """A failed verification of a department's fix: the lead's assignment starts again (返工) with a
    fresh deadline and the case is ``dispatched`` to it again."""
    for index, assignment in enumerate(case.assignments):
        if assignment.department == case.resolved_department and assignment.role == "lead" \
                and assignment.status == DONE:
            again = case.deadline_after(now, case.policy.department_limit)
            _set(case, index, replace(assignment, status=ASSIGNED, acknowledged_at=None, feedback_at=None,
                                      overdue=False, deadline=again))
            case.status, case.resolved_department = Status.DISPATCHED, None
            set_deadline(case, again, now, restart=now)
            return
    raise InvalidTransition("department.none_resolved")


def flag_overdue(case: Case, now: datetime) -> Outcome:
    """Each active assignment whose deadline has passed is flagged ``overdue`` once; the case stays at
    its level (a department's lateness is urged, 督办, not escalated up the ladder)."""
    outcome = Outcome()
    for index, assignment in enumerate(case.assignments):
        if assignment.active and not assignment.overdue and is_late(assignment.deadline, now):
            _set(case, index, replace(assignment, overdue=True))
            outcome += record(case, StepType.DEPARTMENT_OVERDUE, SYSTEM, now,
                              words.note("note.department_overdue", department=assignment.department,
                                         role=words.word("role", assignment.role)),
                              scheduled_at=assignment.deadline,
                              detail={"department": assignment.department, "role": assignment.role})
    if outcome:
        _retime(case, now)
    return outcome


def lead_of(case: Case) -> Assignment | None:
    """The active lead assignment, if any."""
    return next((a for a in case.assignments if a.role == "lead" and a.active), None)


def _own(case: Case, actor: Actor) -> tuple[int, Assignment]:
    if actor.role != Role.DEPARTMENT or not actor.department:
        raise NotAllowed("department.not_assigned_one")
    for index in range(len(case.assignments) - 1, -1, -1):
        if case.assignments[index].department == actor.department:
            if case.status in ENDED:
                raise InvalidTransition("case.ended", status=word("status", case.status))
            return index, case.assignments[index]
    raise NotAllowed("department.not_this_one")


def _set(case: Case, index: int, assignment: Assignment) -> None:
    items = list(case.assignments)
    items[index] = assignment
    case.assignments = tuple(items)


def _retime(case: Case, now: datetime) -> None:
    """A dispatched case shows its lead's deadline; every change of an assignment moves the timer token
    (``set_deadline``), so a scheduler tick read before it is stale."""
    if case.status == Status.DISPATCHED:
        lead = lead_of(case)
        set_deadline(case, lead.deadline if lead else None, now, keep_flags=True)
    else:
        touch(case)
