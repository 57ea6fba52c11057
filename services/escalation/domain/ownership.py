"""Who owns a case, and every way that changes: one rule and one permission table, in escalation (the
service that owns the case), whichever door the change came in by.

The permission table (``WHO``), for a case in status open, acknowledged or rework:

| change            | who                                          | to                                          |
|-------------------|----------------------------------------------|---------------------------------------------|
| escalate (上报)    | the owner                                    | the next owned level up, the same units     |
| return (回退/下派) | the owner                                    | a lower level of the same units             |
| transfer (转办)    | the owner at levels 2–4; command at any level | a grid or station inside the actor's area   |
| re-route          | the system (a new area version), not ended   | the owners the version's map gives          |

- escalate and return restart the target level with its full limit; headquarters has no level above
  (409); a return names a lower level that has an owner (422).
- transfer: "inside the actor's own area" is the area-scope rule (``shared.owners.in_scope``): a station
  moves a case among its grids, a sub-center among its stations and their grids, command anywhere; the
  case restarts at the first owned level at or above the unit's, with its full limit; a transfer to
  where the case already is is refused (422), so it never buys a fresh clock.
- re-route keeps the level and deadline (moving up to the first owned level if its level lost its owner).
  A re-route is computed by dispatch from the owners its record holds, as of the case revision it last
  took from escalation (``basis``); one computed before the case's last staff transfer (its ``basis``
  older than ``Case.transferred_revision``) is stale and changes nothing: a staff transfer is never
  overridden by a map decision made without knowing of it.

A grid worker never transfers: a case that is not theirs goes up (``escalate``), and the level that
holds both units moves it. A station or sub-center that finds a case belongs to another unit's area
escalates it the same way. Nobody may take a case down a level by transferring it unless the case is
theirs now: the owner at level 3 may send it to a station or grid of its own (a fresh limit there, as
a return gives), a station may not pull a case that went up to its sub-center.

Dispatch proposes re-routes (``case.transferred`` without a level, from a new area version); escalation
decides them here and publishes the owners it decided, which dispatch and intake take. Concurrent
changes of one case are serialised by its revision: the case row is read ``FOR UPDATE`` and saved under
the revision it was read at, and an action sent under an older ``ETag`` answers ``412``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.escalation.domain.cases import ENDED, WORKING, Case, move
from services.escalation.domain.errors import (
    InvalidArgument,
    InvalidTransition,
    NotAllowed,
    require_status,
    required_text,
)
from services.escalation.domain.permissions import ROLE_LEVEL, Actor, holds
from services.escalation.domain.timeline import SYSTEM, Outcome, StepType, record
from shared import words
from shared.owners import Owners, in_scope
from shared.vocabulary import Level, Role, Status
from shared.words import word

#: The levels a case is transferred to: a grid or a station (a unit that works cases on the ground).
TRANSFER_LEVELS = (Level.GRID, Level.STATION)


@dataclass(frozen=True)
class Who:
    """A row of the permission table: the levels of the case at which its owner may make the change,
    and whether command may make it at any level."""

    owner_at: frozenset[Level]
    command: bool = False


#: change → who may make it (the table above). ``reroute`` is the system's alone (``reroute``).
WHO: dict[str, Who] = {
    "escalate": Who(frozenset(Level)),
    "return": Who(frozenset(Level)),
    "transfer": Who(frozenset({Level.STATION, Level.SUBCENTER, Level.HQ}), command=True),
}


def may(change: str, actor: Actor, case: Case) -> str | None:
    """Why ``actor`` may not make ``change`` to ``case`` as it stands (None: they may), by ``WHO``."""
    who = WHO[change]
    if who.command and actor.role == Role.COMMAND:
        return None
    if not holds(actor, case, case.level):
        return f"only the {case.level.area} owning the case may {change} it"
    if case.level not in who.owner_at:
        if ROLE_LEVEL.get(actor.role) == Level.GRID:
            return f"a grid worker does not {change} cases: escalate it, and the level above decides"
        return f"the owner of a case at level {int(case.level)} may not {change} it"
    return None


def _require(change: str, actor: Actor, case: Case) -> None:
    refusal = may(change, actor, case)
    if refusal is not None:
        raise NotAllowed(refusal)


def escalate(case: Case, actor: Actor, now: datetime, *, reason: str) -> Outcome:
    """上报: the owner sends the case up to the next owned level, which gets its full limit."""
    _require("escalate", actor, case)
    require_status(case.status, WORKING, "be escalated")
    if case.level == Level.HQ:
        raise InvalidTransition("case.hq_has_no_above")
    reason = required_text(reason, "a reason", "reason")
    move(case, case.owners.owned_level(case.level.up), Status.OPEN, now)
    return record(case, StepType.ESCALATED, actor.user, now, reason)


def return_down(case: Case, actor: Actor, now: datetime, *, level: Level | int | str, reason: str) -> Outcome:
    """回退/下派: the owner at a higher level hands the case to a named lower level that has an
    owner; that level starts afresh with its full limit."""
    _require("return", actor, case)
    require_status(case.status, WORKING, "be returned")
    target = _level(level)
    if target >= case.level:
        raise InvalidArgument("case.return_not_lower", field="level", level=int(case.level))
    if case.owners.at(target) is None:
        raise InvalidArgument("case.no_level_to_return", field="level", area=word("area", target.area))
    reason = required_text(reason, "a reason", "reason")
    move(case, target, Status.OPEN, now)
    return record(case, StepType.RETURNED, actor.user, now, reason)


def transfer(case: Case, actor: Actor, now: datetime, *, owners: Owners, level: Level | int | str,
             reason: str) -> Outcome:
    """转办: the new owners (``owners``, of the named unit at ``level``: a grid or a station) take the case,
    which restarts at the first owned level at or above ``level`` with that level's limit. Who may,
    and where to: ``WHO["transfer"]`` and the unit inside the actor's own area (403 otherwise)."""
    _require("transfer", actor, case)
    require_status(case.status, WORKING, "be transferred")
    if not isinstance(owners, Owners) or owners.hq is None:
        raise InvalidArgument("case.transfer_owners", field="to")
    target = _level(level, field="to")
    if target not in TRANSFER_LEVELS:
        raise InvalidArgument("case.transfer_level", field="to")
    if not in_scope(actor.role, actor.area, owners):
        raise NotAllowed("case.transfer_outside", role=actor.role)
    level_after = owners.owned_level(target)
    if level_after == case.level and owners.at(level_after) == case.owners.at(case.level):
        raise InvalidArgument("case.already_with", field="to", area=case.owner.area_id)
    reason = required_text(reason, "a reason", "reason")
    case.owners = owners
    move(case, level_after, Status.OPEN, now)
    return record(case, StepType.TRANSFERRED, actor.user, now, f"{reason} → {case.owner.area_id}")


def reroute(case: Case, owners: Owners, now: datetime, *, basis: int | None = None) -> Outcome:
    """A new area version gives the case other owners: the level and deadline stay (if the case's
    level has no owner any more, it moves up to the first owned level, deadline unchanged). A case that
    ended (closed, refused, voided, merged) keeps its owners and history; unchanged owners change
    nothing; a proposal computed before the case's last staff transfer (``stale``) changes nothing.
    ``basis``: the case revision the proposal was computed from (None: from the owners the case opened
    with). The system's alone."""
    if case.status in ENDED or owners == case.owners or owners.hq is None or stale(case, basis):
        return Outcome()
    case.owners = owners
    case.level = owners.owned_level(case.level)
    return record(case, StepType.REROUTED, SYSTEM, now, words.note("note.rerouted", area=case.owner.area_id))


def stale(case: Case, basis: int | None) -> bool:
    """Whether a re-route computed from the case as of revision ``basis`` (None: as it opened) was
    computed before the case's last staff transfer, which it would silently undo."""
    return case.transferred_revision is not None and (basis or 0) < case.transferred_revision


def stamp(case: Case, outcome: Outcome, revision: int) -> None:
    """Called by the store as it saves ``outcome`` under ``revision``: a staff transfer's revision is
    kept on the case (``Case.transferred_revision``), which ``stale`` compares a re-route's basis with."""
    if any(step.type == StepType.TRANSFERRED for step in outcome.steps):
        case.transferred_revision = revision


def _level(value: object, field: str = "level") -> Level:
    try:
        return Level.of(value)
    except (ValueError, TypeError, KeyError):
        raise InvalidArgument("case.unknown_level", field=field, level=str(value)) from None
