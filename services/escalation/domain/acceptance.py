"""Acceptance (立案) and the endings other than a verified fix, and the named handler (承办人).

GB/T 30428's second step: the center checks a report against its category's acceptance conditions
(within the city's remit, enough information, not already fixed, not a duplicate) and opens a case,
or refuses it (不予立案) with a reason, or voids (作废) a mistaken entry (DOMAIN.md). Which reports wait
for it is the policy's (``[needs_acceptance]`` per channel and category; the public's Open311 reports
by default); a waiting report is a case in ``pending_acceptance``, with the policy's acceptance time
limit (flagged once when it passes, never escalated) and no deadline ladder.

| action       | who                                         | from status                    | arguments        |
|--------------|---------------------------------------------|--------------------------------|------------------|
| accept       | station, sub-center or command over it      | pending_acceptance             | note?            |
| refuse       | station, sub-center or command over it      | pending_acceptance             | reason, note?    |
| void         | command headquarters                        | pending_acceptance, working    | reason           |
| merge        | station, sub-center or command over it      | pending_acceptance, working    | into, note?      |
| set_severity | station, sub-center or command over it      | pending_acceptance             | severity         |
| assign       | the unit holding it (or its department)     | accepted, not ended            | assignee         |

- **accept**: the case opens at its start level (for its severity) with that level's full limit: the
  ladder's clock starts at acceptance (GB/T 30428: dispatch follows acceptance). Departments of the
  category are assigned then (the handler).
- **refuse**: ``reason`` one of ``REFUSAL_REASONS`` (``other`` needs a ``note``): the report is told why.
- **merge** ``into`` another case that has not ended (not itself, not closed, refused, voided or
  merged): the merged report follows that case's status from then on (intake), and that case's
  timeline notes it (``merged_in``). A case with departments at work is not merged.
- **set_severity**: the reporter's proposed severity confirmed or changed before acceptance; the case
  takes the category × severity rule (``Severity``: its frozen time policy and start level), and its
  acceptance deadline is the new rule's, counted from when the report came in.
- **assign** (承办人): the unit holding the case names one of its people (``Person``: a user and the
  units they are known in) to handle it, or nobody (``None``); a functional department names its own
  person on its assignment. Outside the unit: 422 naming ``assignee``.

Checks run as everywhere: who (403), then state (409), then arguments (422).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.escalation.domain.cases import ENDED, WORKING, Case, end, set_deadline
from services.escalation.domain.deadlines import TimePolicy
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed, phrase, required_text
from services.escalation.domain.permissions import Actor, holds, require_acceptor
from services.escalation.domain.timeline import Outcome, StepType, record
from shared import words
from shared.vocabulary import Level, Role, Status
from shared.words import word

#: Why a report is not accepted (不予立案): not the city's matter, too little to act on, fixed already,
#: a duplicate (of a case outside the caller's area: a merge is the way within it), or another reason
#: (then said in the note).
REFUSAL_REASONS = ("not_city_matter", "insufficient_information", "already_fixed", "duplicate", "other")
PENDING = frozenset({Status.PENDING_ACCEPTANCE})


@dataclass(frozen=True)
class Severity:
    """A severity of the case's category as the policy rules it: its name, the time policy frozen from
    the category × severity rule and the level a case of it starts at."""

    name: str
    policy: TimePolicy
    start_level: Level


@dataclass(frozen=True)
class Person:
    """Someone who may be named a case's handler: their user name and the units (area ids, or a
    department's id) they are known to work in."""

    user: str
    units: frozenset[str]


def accept(case: Case, actor: Actor, now: datetime, *, note: str = "") -> Outcome:
    """立案: the report becomes a case at its start level with that level's full limit."""
    require_acceptor(actor, case, "accept a report")
    _pending(case, "accepted")
    case.status = Status.OPEN
    set_deadline(case, case.deadline_after(now, case.policy.limit(case.level)), now, restart=now)
    return record(case, StepType.ACCEPTED, actor.user, now, (note or "").strip())


def refuse(case: Case, actor: Actor, now: datetime, *, reason: str, note: str = "") -> Outcome:
    """不予立案 with a reason (``REFUSAL_REASONS``) the reporter reads; ``other`` needs a note."""
    require_acceptor(actor, case, "refuse a report")
    _pending(case, "refused")
    if reason not in REFUSAL_REASONS:
        raise InvalidArgument("acceptance.unknown_reason", field="reason", reason=str(reason),
                              choices=", ".join(REFUSAL_REASONS))
    note = required_text(note, "a note saying why", "note") if reason == "other" else (note or "").strip()
    end(case, Status.REFUSED, now)
    said = word("refusal", reason)  # the reason in the reader's language; the reporter's note as written
    return record(case, StepType.REFUSED, actor.user, now,
                  words.note("note.refused_with_note", reason=said, note=note) if note
                  else words.note("note.refused", reason=said), detail={"reason": reason})


def void(case: Case, actor: Actor, now: datetime, *, reason: str) -> Outcome:
    """作废: command headquarters strikes out a mistaken entry (waiting, or being worked on)."""
    if actor.role != Role.COMMAND:
        raise NotAllowed("acceptance.void_by_command")
    if case.status not in PENDING | WORKING:
        raise InvalidTransition("acceptance.cannot_void", status=word("status", case.status))
    reason = required_text(reason, "a reason", "reason")
    end(case, Status.VOIDED, now)  # a waiting extension or suspension request lapses
    return record(case, StepType.VOIDED, actor.user, now, reason)


def merge(case: Case, actor: Actor, now: datetime, *, into: Case | None, note: str = "") -> Outcome:
    """The report duplicates ``into`` (a case the caller sees; the handler loads it, 404 otherwise): it
    ends ``merged`` and follows ``into`` from then on. Record ``absorb`` on ``into`` beside it."""
    require_acceptor(actor, case, "merge a report")
    if case.status not in PENDING | WORKING:
        raise InvalidTransition("acceptance.cannot_merge", status=word("status", case.status))
    if any(a.active for a in case.assignments):
        raise InvalidTransition("acceptance.departments_at_work")
    if not isinstance(into, Case):
        raise InvalidArgument("acceptance.into", field="into")
    if into.id == case.id:
        raise InvalidTransition("acceptance.merge_self")
    if into.status in ENDED:
        raise InvalidTransition("acceptance.target_ended", number=into.number, status=word("status", into.status))
    note = (note or "").strip()
    case.merged_into = into.id
    end(case, Status.MERGED, now)
    return record(case, StepType.MERGED, actor.user, now,
                  words.note("note.merged_into_with_note", number=into.number, note=note) if note
                  else words.note("note.merged_into", number=into.number),
                  detail={"into": into.id, "number": into.number})


def absorb(into: Case, merged: Case, actor: Actor, now: datetime) -> Outcome:
    """The step on the case a report was merged into (``merge``): its state does not change."""
    return record(into, StepType.MERGED_IN, actor.user, now, merged.number,
                  detail={"case": merged.id, "number": merged.number})


def set_severity(case: Case, actor: Actor, now: datetime, *, severity: Severity | None) -> Outcome:
    """The severity confirmed or changed before acceptance: the case takes its rule (time policy and
    start level); the acceptance deadline is the new rule's, from when the report came in."""
    require_acceptor(actor, case, "set a report's severity")
    if case.status not in PENDING:
        raise InvalidTransition("acceptance.severity_at_acceptance", status=word("status", case.status))
    if not isinstance(severity, Severity):
        raise InvalidArgument("acceptance.unknown_severity", field="severity")
    before = case.severity
    case.severity, case.policy = severity.name, severity.policy
    case.level = case.owners.owned_level(severity.start_level)
    set_deadline(case, case.deadline_after(case.opened_at, case.policy.acceptance_limit), now)
    return record(case, StepType.SEVERITY_SET, actor.user, now, f"{before} → {severity.name}",
                  detail={"severity": severity.name})


def assign(case: Case, actor: Actor, now: datetime, *, assignee: Person | None) -> Outcome:
    """承办人: the unit holding the case (its station, sub-center or command headquarters at the case's
    level, or an assigned department for its own part) names the person who handles it; ``None``
    unassigns. The person must be known in that unit (422 naming ``assignee``)."""
    department = _department_part(case, actor)
    if department is None and not (actor.role in (Role.STATION, Role.SUBCENTER, Role.COMMAND)
                                   and holds(actor, case, case.level)):
        raise NotAllowed("acceptance.not_holder")
    if case.status in ENDED or case.status in PENDING:
        raise InvalidTransition("acceptance.accept_first" if case.status in PENDING else "acceptance.no_handler",
                                status=word("status", case.status))
    unit = actor.department if department is not None else case.owner.area_id
    if assignee is not None and (not isinstance(assignee, Person) or unit not in assignee.units):
        who = assignee.user if isinstance(assignee, Person) else assignee
        raise InvalidArgument("acceptance.unknown_person", field="assignee", who=str(who), unit=unit)
    user = assignee.user if assignee is not None else None
    if department is not None:
        index, part = department
        items = list(case.assignments)
        items[index] = replace(part, assignee=user)
        case.assignments = tuple(items)
    else:
        case.assignee, case.assignee_unit = user, unit if user else None
    return record(case, StepType.ASSIGNED, actor.user, now, user or "",
                  detail={"assignee": user, "unit": unit})


def _department_part(case: Case, actor: Actor):
    """(index, assignment) of the department's active part on the case when ``actor`` is that department."""
    if actor.role != Role.DEPARTMENT or not actor.department:
        return None
    for index in range(len(case.assignments) - 1, -1, -1):
        part = case.assignments[index]
        if part.department == actor.department:
            if not part.active:
                raise InvalidTransition("acceptance.part_ended", status=word("assignment", part.status))
            return index, part
    raise NotAllowed("department.not_this_one")


def _pending(case: Case, doing: str) -> None:
    if case.status not in PENDING:
        raise InvalidTransition("acceptance.not_pending", doing=phrase("done", doing),
                                status=word("status", case.status))
