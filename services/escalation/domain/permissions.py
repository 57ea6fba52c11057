"""Who may act on a case, by role, level and area (PRODUCT.md, "four-level closed loop").

- The **owner** acts: the staff role of the case's current level (grid worker at 1, station at 2,
  sub-center at 3, command at 4) whose area is the case's owner at that level. Command
  headquarters is one per city, so a command caller's area is not compared.
- The **level above** decides on extensions: the owner at the first owned level above the case's
  level; above headquarters, a supervisor.
- **Oversight** (reopen): command, supervisor or admin.
- The **verifier**: the grid worker of the case's grid; for a point in no grid, the station's owner.

- **Changes of owner** (escalate, return, transfer, re-route): ``ownership.WHO``, one table.

Area scope (a caller sees only cases in its area; 404 otherwise) is the API's, before any of this.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.escalation.domain.cases import Case
from services.escalation.domain.errors import NotAllowed
from shared.vocabulary import Level, Role

#: The level a staff role works at; supervisors and admins own no level.
ROLE_LEVEL: dict[Role, Level] = {Role.GRID_WORKER: Level.GRID, Role.STATION: Level.STATION,
                                 Role.SUBCENTER: Level.SUBCENTER, Role.COMMAND: Level.HQ}
OVERSIGHT = frozenset({Role.COMMAND, Role.SUPERVISOR, Role.ADMIN})


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
        raise NotAllowed(f"only the {case.level.area} owning the case may {doing}")


def require_level_above(actor: Actor, case: Case, doing: str) -> None:
    if case.level == Level.HQ:
        if actor.role != Role.SUPERVISOR:
            raise NotAllowed(f"only a supervisor may {doing} for headquarters")
        return
    above = case.owners.owned_level(case.level.up)
    if not holds(actor, case, above):
        raise NotAllowed(f"only the {above.area} above the case may {doing}")


def require_oversight(actor: Actor, doing: str) -> None:
    if actor.role not in OVERSIGHT:
        raise NotAllowed(f"only command, a supervisor or an admin may {doing}")


def verifying_level(case: Case) -> Level:
    """Who checks a fix on site: the grid worker of the case's grid, or the station of a case in no grid."""
    return Level.GRID if case.owners.grid is not None else Level.STATION


def require_verifier(actor: Actor, case: Case) -> None:
    level = verifying_level(case)
    if not holds(actor, case, level):
        who = "the grid worker of the case's grid" if level == Level.GRID else "the station of a case in no grid"
        raise NotAllowed(f"only {who} may verify")
