"""What a case's steps tell whom: the notification events, who each is addressed to, and which
subscriptions hear it. Plain Python over the domain's ``Case`` and ``Outcome``; no SQL, no HTTP.

A step becomes zero or more **notices** (``notices``): an event name from ``EVENTS`` and the units it
is addressed to (``Addressee``: an area or a department, with the role that works there):

| step (bus event) | notification events | addressed to |
|---|---|---|
| ``opened``, ``transferred``, ``rerouted`` | ``assigned`` | the owner at the case's level |
| ``escalated`` | ``escalated``, ``assigned`` | the new owner |
| ``returned`` | ``returned``, ``assigned`` | the new (lower) owner |
| ``department_assigned`` | ``assigned`` | the department |
| ``warning`` | ``warned`` | the owner |
| ``overdue`` (headquarters) | ``overdue`` | headquarters (there is no level above) |
| ``overdue`` (``case.verification_overdue``) | ``overdue`` | the station (the level above the grid worker) |
| ``department_overdue`` | ``overdue`` | the case's owner (who assigned and watches it) |
| ``reworked`` | ``rework`` | the owner at the level that resolved it |
| ``resolved`` | ``verification_due`` | who checks the fix on site (``verifier_level``: the grid worker; the station |
| | | for a case in no grid or one its grid worker fixed) |
| ``accepted`` (立案) | ``accepted``, ``assigned`` | the owner at the case's level, whose clock starts |
| ``refused`` (不予立案) | ``refused`` | the owner of the place it was reported at |
| ``urged`` (督办) | ``urged`` | who holds the case (the owner, or its lead department) and the level above |

``early_warning`` comes from elsewhere (``enqueue``); a subscription may name it already.

A **subscription** hears a notice when every filter it sets holds (``matches``): ``unit`` is one of the
case's owners or assigned departments (a station hears about the cases of its grids), ``role`` is the
role of an addressee, ``user`` is the case's reporter (the grid worker who filed it).

**Defaults** (``DEFAULT_RULES``), in-app only, for a city that has set nothing up, each to the notice's
addressees: a case's new owner is told when it arrives (``assigned``) or comes back for rework
(``rework``), who checks a fix on site when it is due (``verification_due``), who holds an urged case and
the level above (``urged``: 督办 tells both), and the level above when a case is overdue (``overdue``);
an early warning is shown to the units its producer addresses.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from services.escalation.domain.cases import Case
from services.escalation.domain.timeline import Outcome, Step
from shared.vocabulary import Level, Role, StepType

#: Every notification event a subscription may name.
EVENTS = ("assigned", "warned", "overdue", "escalated", "returned", "rework", "verification_due", "urged",
          "early_warning", "accepted", "refused")
#: Delivery channels; ``inapp`` is the bell on the board (no target).
CHANNELS = ("webhook", "wecom", "dingtalk", "email", "inapp")
LANGUAGES = ("zh", "en")
#: The in-app events every city has without a subscription: id of the rule → event.
DEFAULT_RULES = {"default.assigned": "assigned", "default.overdue": "overdue", "default.rework": "rework",
                 "default.verification_due": "verification_due", "default.urged": "urged",
                 "default.early_warning": "early_warning"}
#: The role that works at each level.
LEVEL_ROLE = {Level.GRID: Role.GRID_WORKER, Level.STATION: Role.STATION, Level.SUBCENTER: Role.SUBCENTER,
              Level.HQ: Role.COMMAND}
#: The namespace of event ids (uuid5): an event id is a name for one step of one case, never random.
NAMESPACE = uuid.UUID("4f0b6c3e-6a0e-5d7c-9d52-2f1e5c9a7b10")
#: The severity whose cases ignore quiet hours.
URGENT = "urgent"


@dataclass(frozen=True)
class Addressee:
    """A unit a notice is addressed to: an area id or a department id, and the role working there."""

    unit: str
    role: str

    @property
    def inbox(self) -> str:
        """The in-app recipient key: headquarters is one per city (``role:command``); other units by id."""
        return f"role:{self.role}" if self.role == Role.COMMAND else f"unit:{self.unit}"


@dataclass(frozen=True)
class Notice:
    """One notification event: its ``id`` (the same for every subscriber and every retry), its name,
    whom it is addressed to and the step that caused it."""

    id: str
    event: str
    addressees: tuple[Addressee, ...]
    step: Step


def event_id(*parts: object) -> str:
    """A stable event id from what names the event (a case, its revision, the step's index, the event)."""
    return str(uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)))


def owner_at(case: Case, level: Level) -> Addressee | None:
    """The owner of ``case`` at the first owned level at or above ``level``."""
    owned = case.owners.owned_level(level)
    ref = case.owners.at(owned)
    return Addressee(ref.id, str(LEVEL_ROLE[owned])) if ref is not None else None


def above(case: Case, level: Level) -> Addressee | None:
    """The owner at the first owned level above ``level``; headquarters at headquarters."""
    return owner_at(case, level.up or Level.HQ)


def notices(case: Case, outcome: Outcome, revision: int) -> list[Notice]:
    """The notices of the steps ``outcome`` made on ``case`` (saved as ``revision``); each step's
    event ids name (case, revision, the step's index among the outcome's events, the event)."""
    found = []
    for index, bus_event in enumerate(outcome.events):
        for name, addressees in _addressed(case, bus_event.type, bus_event.step, bus_event.detail):
            kept = tuple(dict.fromkeys(a for a in addressees if a is not None))
            found.append(Notice(event_id(case.id, revision, index, name), name, kept, bus_event.step))
    return found


def _addressed(case: Case, bus_type: str, step, detail) -> Iterable[tuple[str, list]]:
    kind = str(step.type)
    level = Level(step.level)
    if kind in (StepType.OPENED, StepType.TRANSFERRED, StepType.REROUTED):
        yield "assigned", [owner_at(case, level)]
    elif kind in (StepType.ESCALATED, StepType.RETURNED):
        yield kind, [owner_at(case, level)]
        yield "assigned", [owner_at(case, level)]
    elif kind == StepType.DEPARTMENT_ASSIGNED and detail.get("department"):
        yield "assigned", [Addressee(str(detail["department"]), str(Role.DEPARTMENT))]
    elif kind == StepType.WARNING:
        yield "warned", [owner_at(case, level)]
    elif kind == StepType.OVERDUE:
        flagged = Level.GRID if bus_type == "case.verification_overdue" else level
        yield "overdue", [above(case, flagged)]
    elif kind == StepType.DEPARTMENT_OVERDUE:
        yield "overdue", [owner_at(case, case.level)]
    elif kind == StepType.REWORKED:
        yield "rework", [owner_at(case, level)]
    elif kind == StepType.RESOLVED:
        verifier = detail.get("verifier_level")
        yield "verification_due", [owner_at(case, Level(verifier) if verifier else Level.GRID)]
    elif kind == StepType.ACCEPTED:
        yield "accepted", [owner_at(case, level)]
        yield "assigned", [owner_at(case, level)]
    elif kind == StepType.REFUSED:
        yield "refused", [owner_at(case, level)]
    elif kind == StepType.URGED:
        urged = str(detail.get("urged") or "")
        held = (Addressee(urged, str(Role.DEPARTMENT)) if urged in {a.department for a in case.assignments}
                else owner_at(case, level))
        yield "urged", [held, above(case, level)]


@dataclass(frozen=True)
class Subscription:
    """A stored subscription (``subscriptions`` row): filters (``unit``, ``user``, ``role``; None: any),
    the events it hears, and where and how it is told."""

    id: str
    unit: str | None
    user: str | None
    role: str | None
    events: tuple[str, ...]
    channel: str
    target: str | None
    secret: str | None
    language: str
    quiet_hours: bool = False

    def to_dict(self) -> dict:
        """The subscription as the API shows it (never its secret)."""
        return {"id": self.id, "unit": self.unit, "user": self.user, "role": self.role, "events": list(self.events),
                "channel": self.channel, "target": self.target, "language": self.language,
                "quiet_hours": self.quiet_hours, "signed": bool(self.secret)}


def matches(subscription: Subscription, notice: Notice, units: frozenset[str], reporter: str | None) -> bool:
    """Whether ``subscription`` hears ``notice`` about a case whose owners and departments are ``units``
    and whose reporter is ``reporter``: each filter it sets must hold."""
    if notice.event not in subscription.events:
        return False
    if subscription.unit is not None and subscription.unit not in units:
        return False
    if subscription.role is not None and subscription.role not in {a.role for a in notice.addressees}:
        return False
    return subscription.user is None or subscription.user == reporter


def units_of(case: Case) -> frozenset[str]:
    """The units a case concerns: its owners' area ids and its departments' ids."""
    return frozenset(ref.id for ref in (case.owners.grid, case.owners.station, case.owners.subcenter,
                                        case.owners.hq) if ref is not None) | {a.department for a in case.assignments}
