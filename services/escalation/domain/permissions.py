"""Who may act on a case, by role, level and area (PRODUCT.md, "four-level closed loop").

- The **owner** acts: the staff role of the case's current level (grid worker at 1, station at 2,
  sub-center at 3, command at 4) whose area is the case's owner at that level. Command
  headquarters is one per city, so a command caller's area is not compared.
- The **level above** decides on extensions: the owner at the first owned level above the case's
  level; above headquarters, a supervisor.
- **Oversight** (reopen): command, supervisor or admin.
- **Acceptance** (立案: accept, refuse, merge, set the severity): a station, sub-center or command
  headquarters whose area holds the case (``require_acceptor``); voiding (作废) is command's alone.
- The **verifier** (``verifying_level``): the grid worker of the case's grid, unless the grid worker
  resolved it themself; then, and for a point in no grid, the level above (the station). Nobody
  verifies a fix they made (``require_verifier``).

- **Changes of owner** (escalate, return, transfer, re-route): ``ownership.WHO``, one table.

Area scope (a caller sees only cases in its area; 404 otherwise) is the API's, before any of this.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.escalation.domain.cases import Case
from services.escalation.domain.errors import NotAllowed, phrase
from shared.vocabulary import Level, Role
from shared.words import Message, word

#: The level a staff role works at; supervisors and admins own no level.
ROLE_LEVEL: dict[Role, Level] = {Role.GRID_WORKER: Level.GRID, Role.STATION: Level.STATION,
                                 Role.SUBCENTER: Level.SUBCENTER, Role.COMMAND: Level.HQ}
OVERSIGHT = frozenset({Role.COMMAND, Role.SUPERVISOR, Role.ADMIN})
#: Staff who accept (立案), refuse, merge and set a report's severity, within their area.
ACCEPTORS = frozenset({Role.STATION, Role.SUBCENTER, Role.COMMAND})
#: The role that works at each level (the inverse of ``ROLE_LEVEL``).
LEVEL_ROLE: dict[Level, Role] = {level: role for role, level in ROLE_LEVEL.items()}


@dataclass(frozen=True)
class Actor:
    """Who takes an action. ``shared.auth.Identity`` has the same three attributes and may be passed."""

    role: str
    user: str
    area: str | None = None
    department: str | None = None  # a functional department's id (role ``department``)


def holds(actor: Actor, case: Case, level: Level) -> bool:
    """Whether ``actor`` is the owner of ``case`` at ``level``."""
    if ROLE_LEVEL.get(actor.role) != level:
        return False
    ref = case.owners.at(level)
    return level == Level.HQ or (ref is not None and actor.area == ref.id)


def require_owner(actor: Actor, case: Case, doing: str) -> None:
    if not holds(actor, case, case.level):
        raise NotAllowed("case.not_owner", area=word("area", case.level.area), doing=phrase("doing", doing))


def require_level_above(actor: Actor, case: Case, doing: str) -> None:
    if case.level == Level.HQ:
        if actor.role != Role.SUPERVISOR:
            raise NotAllowed("case.supervisor_at_hq", doing=phrase("doing", doing))
        return
    above = case.owners.owned_level(case.level.up)
    if not holds(actor, case, above):
        raise NotAllowed("case.not_level_above", area=word("area", above.area), doing=phrase("doing", doing))


def require_oversight(actor: Actor, doing: str) -> None:
    if actor.role not in OVERSIGHT:
        raise NotAllowed("case.not_oversight", doing=phrase("doing", doing))


def require_acceptor(actor: Actor, case: Case, doing: str) -> None:
    """A station, sub-center or command headquarters whose area holds the case (the store's area scope
    has already hidden other areas' cases)."""
    if actor.role not in ACCEPTORS or not holds(actor, case, ROLE_LEVEL[Role(actor.role)]):
        raise NotAllowed("case.not_acceptor", doing=phrase("doing", doing))


def verifying_level(case: Case) -> Level:
    """Who checks a fix on site (核查): the grid worker of the case's grid — except where the grid worker
    resolved it themself at level 1 (就地解决), and for a point in no grid: then the first owned level
    above the grid (the station).

    Source: GB/T 30428 separates the handler from the one who checks the result (the supervision
    center's inspector, 监督员, checks what the departments did; DOMAIN.md, "verification on site by
    someone other than the handler"). In a grid city the grid worker is the checker, so a case the grid
    worker closed on the spot goes to the level above them for its check, as it would for a case in
    no grid."""
    by_grid_worker = case.resolved_level == Level.GRID and case.resolved_department is None
    if case.owners.grid is not None and not by_grid_worker:
        return Level.GRID
    return case.owners.owned_level(Level.STATION)


def resolved_detail(case: Case, photos: tuple[str, ...] = ()) -> dict:
    """What a ``case.resolved`` event tells intake, which takes the verification: who must verify (the
    level), who resolved the case (never its verifier) and the after-photos' ids."""
    return {"verifier_level": int(verifying_level(case)), "resolved_by": case.resolved_by, "photos": list(photos)}


def require_verifier(actor: Actor, case: Case) -> None:
    """The owner at ``verifying_level``, and not the person who resolved the case (the rule
    ``case.not_verifier`` of ``shared/words.toml`` states)."""
    level = verifying_level(case)
    if not holds(actor, case, level):
        who = (Message("case.verifier_grid_worker") if level == Level.GRID
               else Message("case.verifier_above_own_fix" if case.owners.grid is not None
                            else "case.verifier_above_grid", {"area": word("area", level.area)}))
        raise NotAllowed("case.not_verifier", who=who)
    if case.resolved_by is not None and actor.user == case.resolved_by:
        raise NotAllowed("case.own_fix", user=actor.user)
