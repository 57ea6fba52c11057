"""The action table (after Grafana OnCall's escalation step table): every staff action by name.

``perform(case, "acknowledge", actor, now, note="...")`` looks the action up and calls it with its
arguments; an unknown action, or a missing or unexpected argument, is an ``InvalidArgument`` (422).
Adding an action is one function and one row here (plus its schema row in the API).

| action              | who                          | from status               | arguments                |
|---------------------|------------------------------|---------------------------|--------------------------|
| acknowledge         | owner                        | open, rework              | note?                    |
| resolve             | owner                        | open, acknowledged, rework | note                    |
| escalate            | owner (levels 1–3)           | open, acknowledged, rework | reason                  |
| return              | owner, to a lower level      | open, acknowledged, rework | level, reason           |
| transfer            | owner at 2–4, or command     | open, acknowledged, rework | owners, level, reason   |
| request_extension   | owner                        | open, acknowledged, rework | amount, reason          |
| approve_extension   | level above (supervisor at 4) | same, with a request     | note?                    |
| refuse_extension    | level above (supervisor at 4) | same, with a request     | reason                   |
| suspend             | owner (asks the level above) | open, acknowledged, rework | reason                  |
| approve_suspension  | level above (supervisor at 4) | same, with a request     | note?                    |
| refuse_suspension   | level above (supervisor at 4) | same, with a request     | reason                   |
| resume              | owner                        | suspended                 | note?                    |
| verify              | grid worker of the grid      | verifying (resolved)      | passed, note (if failed) |
| reopen              | command, supervisor, admin   | closed                    | reason                   |
| assign_department   | station, sub-center, command | not closed                | department, role, note?  |
| acknowledge (dept.) | the assigned department      | its assignment: assigned  | note?                    |
| feedback            | the assigned department      | its assignment: active    | outcome, note, reason, photos? |
| urge (督办)          | command, supervisor; a sub-center over its stations | not closed | note, respond_within? |
| respond_urge        | the holder (owner or lead department) | an urge open     | note                     |
| accept (立案)        | station, sub-center, command | pending_acceptance        | note?                    |
| refuse (不予立案)     | station, sub-center, command | pending_acceptance        | reason, note?            |
| void (作废)           | command                      | pending_acceptance, working | reason                 |
| merge               | station, sub-center, command | pending_acceptance, working | into, note?            |
| set_severity        | station, sub-center, command | pending_acceptance        | severity                 |
| assign (承办人)       | the unit holding it, or its department | accepted, not ended | assignee (null: nobody) |

``resolve`` also takes ``photos`` (after-photos' intake ids). Acceptance and the handler are in
``acceptance.py``.

Every change of owner (escalate, return, transfer, and the system's re-route) is decided by one rule
with one permission table, ``ownership.py``. The automatic changes (deadline ticks, re-routing) are
``timers.py``'s and ``ownership.reroute``, not here: no caller may request them.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime

from services.escalation.domain import acceptance, departments, holds, loop, ownership, urges
from services.escalation.domain.cases import Case
from services.escalation.domain.errors import InvalidArgument
from services.escalation.domain.permissions import Actor
from services.escalation.domain.timeline import Outcome
from shared.departments import Department
from shared.vocabulary import Level, Role
from shared.words import Message

Action = Callable[..., Outcome]

def acknowledge(case: Case, actor: Actor, now: datetime, *, note: str = "") -> Outcome:
    """签收: the owner takes the case on (``loop.acknowledge``), or an assigned department its
    assignment (``departments.acknowledge``)."""
    if actor.role == Role.DEPARTMENT:
        return departments.acknowledge(case, actor, now, note=note)
    return loop.acknowledge(case, actor, now, note=note)


ACTIONS: dict[str, Action] = {
    "acknowledge": acknowledge,
    "resolve": loop.resolve,
    "escalate": ownership.escalate,
    "return": ownership.return_down,
    "transfer": ownership.transfer,
    "request_extension": holds.request_extension,
    "approve_extension": holds.approve_extension,
    "refuse_extension": holds.refuse_extension,
    "suspend": holds.suspend,
    "approve_suspension": holds.approve_suspension,
    "refuse_suspension": holds.refuse_suspension,
    "resume": holds.resume,
    "verify": loop.verify,
    "reopen": loop.reopen,
    "assign_department": departments.assign_department,
    "feedback": departments.feedback,
    "urge": urges.urge,
    "respond_urge": urges.respond_urge,
    "accept": acceptance.accept,
    "refuse": acceptance.refuse,
    "void": acceptance.void,
    "merge": acceptance.merge,
    "set_severity": acceptance.set_severity,
    "assign": acceptance.assign,
}


def perform(case: Case, action: str, actor: Actor, now: datetime, **arguments) -> Outcome:
    """Run the named action on ``case`` (changed in place) and return its outcome, or raise
    ``NotAllowed`` (403), ``InvalidTransition`` (409) or ``InvalidArgument`` (422); on a refusal the
    case is unchanged."""
    act = ACTIONS.get(action)
    if act is None:
        raise InvalidArgument("case.unknown_action", field="action", action=action, choices=", ".join(ACTIONS))
    expected = arguments_of(action)
    for name in arguments:
        if name not in expected:
            raise InvalidArgument("case.takes_no_argument", field=name, action=action, name=name,
                                  expected=", ".join(expected) or Message("case.nothing"))
    for name, required in expected.items():
        if required and name not in arguments:
            raise InvalidArgument("case.needs_argument", field=name, action=action, name=name)
    return act(case, actor, now, **arguments)


def arguments_of(action: str) -> dict[str, bool]:
    """The named arguments of an action and whether each is required (for the API's schema)."""
    parameters = list(inspect.signature(ACTIONS[action]).parameters.values())[3:]
    return {p.name: p.default is inspect.Parameter.empty for p in parameters}


def available(case: Case, actor: Actor, now: datetime) -> list[str]:
    """The actions ``actor`` may take on ``case`` now (who and state allow them; the arguments are the
    caller's to give), tried on a copy with placeholder arguments."""
    import copy

    from services.escalation.domain.errors import InvalidTransition, NotAllowed

    placeholders = {"note": "-", "reason": "-", "level": Level.GRID, "owners": case.owners, "passed": True,
                    "amount": {"amount": 1, "unit": "seconds"}, "department": Department("-", "-", "-", "-"),
                    "role": "co", "outcome": "done", "photos": [], "respond_within": None, "into": None,
                    "severity": None, "assignee": None}
    allowed = []
    for name in ACTIONS:
        if name == "return" and case.level == Level.GRID:
            continue  # nothing below the grid (the placeholder level would only fail as an argument)
        try:
            perform(copy.deepcopy(case), name, actor, now, **{k: placeholders[k] for k in arguments_of(name)})
        except (NotAllowed, InvalidTransition):
            continue
        except InvalidArgument:
            pass
        allowed.append(name)
    return allowed
