"""The access policy: one function decides every request of every service, ``decide(identity,
action, resource)``.

- **Actions** are named ``<thing>.<verb>`` (``ACTIONS``); each lists the roles that may ever take it.
  A role not listed is **forbidden** (403) whatever the resource: that tells the caller nothing about
  any case, so it is answered before the request's body or query is read.
- **Resources** are described by their owners (``shared.owners.Owners``, as every store keeps them) and,
  for a report, its reporter. A resource the caller may not see is **not found** (404), exactly as a
  missing one: a case outside the caller's area does not exist for them. The area rule is
  ``shared.owners.in_scope``; each store's ``scoped(query, identity)`` is the same rule in SQL,
  used for lists and loads (the store returns nothing; the edge answers 404).
- Everything else is **allowed**; the domain may still refuse an allowed action on a case's state
  (409) or on who is acting within the area (e.g. only the grid's own worker verifies: 403).

The rules come from the product: a grid worker sees their grid and their own reports; a station its
grids; a sub-center its stations; command, supervisors and admins the city; a functional department
the cases assigned to it. Supervisors oversee and do not file reports; only admins import areas and
departments; only staff move cases (README "Roles").
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.owners import NO_OWNERS, Owners, in_scope
from shared.vocabulary import Role


class Decision(StrEnum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not_found"  # 404


#: The roles of the city's own organisation; a functional department (``Role.DEPARTMENT``) is named
#: where it may act: it reads, lists and acts on the cases assigned to it, and reads the areas.
EVERYONE = frozenset(Role) - {Role.DEPARTMENT}
REPORTERS = EVERYONE - {Role.SUPERVISOR}
STAFF = frozenset({Role.STATION, Role.SUBCENTER, Role.COMMAND, Role.ADMIN})
WITH_DEPARTMENTS = EVERYONE | {Role.DEPARTMENT}

#: action → the roles that may take it (``None``: public, no token needed).
ACTIONS: dict[str, frozenset[Role] | None] = {
    "categories.read": None,
    "open311.read": None,
    "open311.submit": None,  # an Open311 client proves itself with its api_key, not a token
    "report.submit": REPORTERS,
    "report.read": WITH_DEPARTMENTS,  # a department: the reports of the cases assigned to it
    "report.list": EVERYONE,
    "photo.add": REPORTERS | {Role.DEPARTMENT},  # a department: its after-photos on its cases
    "photo.read": WITH_DEPARTMENTS,
    "case.verify": EVERYONE,  # the domain narrows it to the grid's own worker (or the station of a case in no grid)
    "case.read": WITH_DEPARTMENTS,  # a department: the cases assigned to it (escalation's store)
    "case.list": WITH_DEPARTMENTS,
    "case.act": WITH_DEPARTMENTS,  # each action's own table (escalation's domain) says who, per level
    "case.transfer": STAFF,
    "duplicate.unlink": STAFF,
    "point.locate": WITH_DEPARTMENTS,
    "areas.read": WITH_DEPARTMENTS,
    "departments.read": WITH_DEPARTMENTS,
    "departments.import": frozenset({Role.ADMIN}),
    "areas.import": frozenset({Role.ADMIN}),
    "stats.read": EVERYONE - {Role.GRID_WORKER},  # area scope applies to each row
    "warning.read": EVERYONE,  # early warnings (预警): the items holding a case of the caller's area
    "warning.act": STAFF,  # acknowledge, close
    "stats.replay": frozenset({Role.COMMAND, Role.SUPERVISOR, Role.ADMIN}),
    # the subscriptions a caller may manage (notify.subscriptions.may_manage narrows to its unit or itself)
    "subscription.list": WITH_DEPARTMENTS,
    "subscription.manage": WITH_DEPARTMENTS - {Role.SUPERVISOR},
    "notification.read": WITH_DEPARTMENTS,  # the caller's own in-app notifications (the bell)
}


@dataclass(frozen=True)
class Resource:
    """What an action is taken on: a case or report (its ``owners``; ``reporter`` for a report)."""

    owners: Owners = NO_OWNERS
    reporter: str | None = None
    departments: frozenset[str] = frozenset()  # the functional departments assigned to the case


def decide(identity, action: str, resource: Resource | None = None) -> Decision:
    """Whether ``identity`` (a ``shared.auth.Identity``, or None for an anonymous caller) may take
    ``action`` (a key of ``ACTIONS``; KeyError for an unknown one) on ``resource`` (None: the action as
    such, before any resource is loaded).

    → ``ALLOW``; ``FORBIDDEN`` when the role may never take the action (or no token for a non-public
    one); ``NOT_FOUND`` when the resource lies outside what the caller may see (their area; a report is
    also visible to its reporter)."""
    roles = ACTIONS[action]
    if roles is None:
        return Decision.ALLOW
    if identity is None or identity.role not in roles:
        return Decision.FORBIDDEN
    if resource is None:
        return Decision.ALLOW
    if resource.reporter is not None and resource.reporter == identity.user:
        return Decision.ALLOW
    if identity.role == Role.DEPARTMENT:
        return Decision.ALLOW if identity.department in resource.departments else Decision.NOT_FOUND
    return Decision.ALLOW if in_scope(identity.role, identity.area, resource.owners) else Decision.NOT_FOUND
