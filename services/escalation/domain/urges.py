"""督办 (urging): supervision of a case on record. The cities in DOMAIN.md close loops by supervision and
accountability (督查、督责): command, a supervisor, or a sub-center over its own stations urges the one who
holds a case to act, and the holder must answer within a time limit.

- ``urge`` (``note``, ``respond_within`` — a time limit such as ``"2 working_hours"``, in the case's
  working calendar; the rule's ``urge_response`` when not given): by command headquarters or a supervisor
  on any case, or by a sub-center on a case held by one of its stations or their grids (levels 1–2). Not on
  a closed case (409). A case may be urged again; each urge is its own step (``urged``) and audit row.
- **Who is urged**: the holder — the lead department of a ``dispatched`` case, else the owner at the case's
  level. ``respond_urge`` (``note``) by the holder answers every urge still open (``urge_answered``); 409
  when none is open.
- An urge unanswered at its due time is flagged once (``urge_overdue``, a timer step with the due time as
  ``scheduled_at``); it stays open for an answer. A suspension holds the flag (as it holds the other clocks).

Functions take ``(case, actor, now, **arguments)`` like every action (who 403, state 409, arguments 422).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.escalation.domain.cases import ENDED, Case, touch
from services.escalation.domain.deadlines import is_late
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed, required_text
from services.escalation.domain.permissions import Actor, holds
from services.escalation.domain.timeline import SYSTEM, Outcome, StepType, record
from shared import words
from shared.timemodel import Limit, parse_limit
from shared.vocabulary import Level, Role, Status
from shared.words import Invalid, word

#: Who may urge any case they see.
URGERS = frozenset({Role.COMMAND, Role.SUPERVISOR})


@dataclass(frozen=True)
class Urge:
    """One urge: when and by whom, its note, who was urged (an area or department id), the time by
    which an answer is due, and the answer (``answered_at`` None while open)."""

    at: datetime
    by: str
    note: str
    urged: str
    due: datetime
    overdue: bool = False
    answered_at: datetime | None = None
    answer: str = ""

    @property
    def open(self) -> bool:
        return self.answered_at is None

    def to_dict(self) -> dict:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"at": iso(self.at), "by": self.by, "note": self.note, "urged": self.urged, "due": iso(self.due),
                "overdue": self.overdue, "answered_at": iso(self.answered_at), "answer": self.answer}

    @classmethod
    def from_dict(cls, data: dict) -> Urge:
        time = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
        return cls(time(data["at"]), data["by"], data.get("note", ""), data.get("urged", ""), time(data["due"]),
                   bool(data.get("overdue")), time(data.get("answered_at")), data.get("answer", ""))


def urge(case: Case, actor: Actor, now: datetime, *, note: str, respond_within: str | Limit | None = None) -> Outcome:
    """督办: urge the case's holder to act, with a note and a time to answer."""
    may = actor.role in URGERS or (
        actor.role == Role.SUBCENTER and case.level < Level.SUBCENTER and case.owners.subcenter is not None
        and case.owners.subcenter.id == actor.area)
    if not may:
        raise NotAllowed("case.not_urger")
    if case.status in ENDED or case.status == Status.PENDING_ACCEPTANCE:
        raise InvalidTransition("case.cannot_be_urged", status=word("status", case.status))
    note = required_text(note, "what is urged", "note")
    if respond_within is None:
        limit = case.policy.urge_response
    else:
        try:
            limit = respond_within if isinstance(respond_within, Limit) else parse_limit(respond_within)
        except Invalid as refusal:  # the parser's words, in the caller's language
            raise InvalidArgument(refusal.code, field="respond_within", **refusal.params) from None
    due = case.deadline_after(now, limit)
    case.urges = (*case.urges, Urge(now, actor.user, note, holder(case), due))
    touch(case)
    return record(case, StepType.URGED, actor.user, now, note, detail={"urged": holder(case), "due": due.isoformat()})


def respond_urge(case: Case, actor: Actor, now: datetime, *, note: str) -> Outcome:
    """The holder answers every open urge with what is being done."""
    if not is_holder(case, actor):
        raise NotAllowed("case.not_urged_holder")
    if case.status in ENDED:
        raise InvalidTransition("case.ended", status=word("status", case.status))
    if not any(u.open for u in case.urges):
        raise InvalidTransition("case.no_urge_waiting")
    note = required_text(note, "the answer", "note")
    case.urges = tuple(replace(u, answered_at=now, answer=note) if u.open else u for u in case.urges)
    touch(case)
    return record(case, StepType.URGE_ANSWERED, actor.user, now, note)


def flag_overdue(case: Case, now: datetime) -> Outcome:
    """Each open urge past its due time is flagged once (``urge_overdue``)."""
    outcome = Outcome()
    items = list(case.urges)
    for index, u in enumerate(items):
        if u.open and not u.overdue and is_late(u.due, now):
            items[index] = replace(u, overdue=True)
            outcome += record(case, StepType.URGE_OVERDUE, SYSTEM, now, words.note("note.urge_overdue", by=u.by),
                              scheduled_at=u.due, detail={"urged": u.urged})
    if outcome:
        case.urges = tuple(items)
        touch(case)
    return outcome


def pending(case: Case) -> list[datetime]:
    """The due times the scheduler must wake for: open urges not yet flagged."""
    return [u.due for u in case.urges if u.open and not u.overdue]


def holder(case: Case) -> str:
    """Who holds the case now: the lead department's id, or the owner's area id."""
    from services.escalation.domain.departments import lead_of

    lead = lead_of(case) if case.status == Status.DISPATCHED else None
    return lead.department if lead is not None else case.owner.area_id


def is_holder(case: Case, actor: Actor) -> bool:
    if case.status == Status.DISPATCHED:
        return actor.role == Role.DEPARTMENT and actor.department == holder(case)
    return holds(actor, case, case.level)
