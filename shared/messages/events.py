"""Every message gridcase sends, as a frozen dataclass. Events are past tense.

A producer builds one of these and hands it to its unit of work (``uow.add(event)``); a consumer
receives one (never a dict). Their wire form — field names, versions, which are required — is in
``shared.messages.schemas``. Times are aware UTC datetimes; a level is a ``Level`` (its number on
the wire); area references are ``AreaRef`` (``{"id", "name"}`` on the wire).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from shared.vocabulary import AREA_LEVELS, Level


@dataclass(frozen=True)
class AreaRef:
    id: str
    name: str


@dataclass(frozen=True)
class Owners:
    """Who owns a case at each area level; a point in no grid has no grid (and maybe no station)."""
    hq: AreaRef
    subcenter: AreaRef | None = None
    station: AreaRef | None = None
    grid: AreaRef | None = None

    def at(self, level: Level) -> AreaRef | None:
        return getattr(self, level.area)

    def ids(self) -> dict[str, str | None]:
        """Area level name → area id (None where the level has no owner)."""
        return {name: (ref.id if (ref := getattr(self, name)) else None) for name in AREA_LEVELS}


@dataclass(frozen=True)
class Location:
    lon: float  # degrees, WGS84
    lat: float


@dataclass(frozen=True)
class Candidate:
    """A grid near a point that lies in no grid, for the person who triages it."""
    id: str
    distance_m: float


@dataclass(frozen=True)
class Message:
    """Base of every message. ``envelope`` is set on a received message (its id, correlation and
    trace), never compared; ``TYPE`` is the routing key."""
    TYPE: ClassVar[str] = ""
    envelope: object | None = field(default=None, compare=False, repr=False, kw_only=True)

    @property
    def correlation_id(self) -> str:
        """Messages about one case share its id as their correlation id."""
        return getattr(self, "case_id", "")


@dataclass(frozen=True)
class CaseReported(Message):
    TYPE: ClassVar[str] = "case.reported"
    case_id: str
    number: str
    category: str
    severity: str
    description: str
    location: Location
    reporter: str | None
    reported_at: datetime


@dataclass(frozen=True)
class CaseDispatched(Message):
    TYPE: ClassVar[str] = "case.dispatched"
    case_id: str
    number: str
    category: str
    severity: str
    reported_at: datetime
    areas_version: int
    start_level: Level
    owners: Owners
    triage: bool = False
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class CaseTransferred(Message):
    """New owners for a case. ``level`` set: staff moved it there (it restarts at that level);
    ``level`` None: a new area version re-routed it (it keeps its level and deadline)."""
    TYPE: ClassVar[str] = "case.transferred"
    case_id: str
    owners: Owners
    level: Level | None
    reason: str
    actor: str


@dataclass(frozen=True)
class OwnerRef:
    level: Level
    area_id: str
    area_name: str


@dataclass(frozen=True)
class CaseChanged(Message):
    """The shared shape of the lifecycle events escalation publishes (and intake follows)."""
    case_id: str
    status: str
    level: Level
    owner: OwnerRef
    at: datetime
    actor: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CaseEscalated(CaseChanged):
    TYPE: ClassVar[str] = "case.escalated"


@dataclass(frozen=True)
class CaseResolved(CaseChanged):
    TYPE: ClassVar[str] = "case.resolved"


@dataclass(frozen=True)
class CaseReworked(CaseChanged):
    TYPE: ClassVar[str] = "case.reworked"


@dataclass(frozen=True)
class CaseClosed(CaseChanged):
    TYPE: ClassVar[str] = "case.closed"


@dataclass(frozen=True)
class CaseVerified(Message):
    TYPE: ClassVar[str] = "case.verified"
    case_id: str
    passed: bool
    verifier: str
    at: datetime
    note: str = ""


@dataclass(frozen=True)
class PublishedArea:
    id: str
    name: str
    level: str
    parent: str | None = None


@dataclass(frozen=True)
class AreasPublished(Message):
    TYPE: ClassVar[str] = "areas.published"
    version: int
    areas: tuple[PublishedArea, ...]
