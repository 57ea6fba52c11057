"""Every message gridcase sends: a frozen dataclass and, right below it, its wire schema. Events are
past tense; the routing key is ``TYPE``.

A producer builds one of these and hands it to its unit of work (``uow.add(event)``); a consumer
receives one (never a dict). Times are aware UTC datetimes; a level is a ``Level`` (its number on
the wire); area references are ``AreaRef`` (``{"id", "name"}`` on the wire). A new message type is a
dataclass and a schema here (the registry in ``shared.messages.schemas`` finds it), a subscription in
``shared/bus.py``, and a consumer and handler in the consuming service.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from marshmallow import ValidationError, fields, post_load, pre_dump, validate

from shared.departments import Department
from shared.messages.wire import LevelField, Payload, TextRecord, TimeField
from shared.owners import AreaRef, OwnerRef, Owners
from shared.vocabulary import AREA_LEVELS, SCOPED_AREA_LEVELS, Level, StepType

# -- parts ---------------------------------------------------------------------------------------------
# ``AreaRef``, ``Owners`` and ``OwnerRef`` are ``shared.owners``' (one type for who owns a case).


class WithOwners(Payload):
    """Owners travel flat (``grid``, ``station``, ``subcenter``, ``hq``), as version 1 wrote them."""
    grid = TextRecord(AreaRef, ("id", "name"), allow_none=True, load_default=None)
    station = TextRecord(AreaRef, ("id", "name"), allow_none=True, load_default=None)
    subcenter = TextRecord(AreaRef, ("id", "name"), allow_none=True, load_default=None)
    hq = TextRecord(AreaRef, ("id", "name"), required=True)

    @pre_dump
    def _flatten_owners(self, obj, **kwargs):
        data = self._as_dict(obj)
        owners = data.pop("owners", None)
        return {**data, **{name: getattr(owners, name) for name in AREA_LEVELS}} if owners else data

    @post_load
    def _build(self, data, **kwargs):
        owners = Owners(**{name: data.pop(name) for name in AREA_LEVELS})
        return self.DATACLASS(owners=owners, **data)


@dataclass(frozen=True)
class Location:
    lon: float  # degrees, WGS84
    lat: float


class LocationSchema(Payload):
    DATACLASS = Location
    lon = fields.Float(required=True, validate=validate.Range(-180, 180), allow_nan=False)
    lat = fields.Float(required=True, validate=validate.Range(-90, 90), allow_nan=False)


@dataclass(frozen=True)
class Candidate:
    """A grid near a point that lies in no grid, for the person who triages it."""
    id: str
    distance_m: float


class CandidateSchema(Payload):
    DATACLASS = Candidate
    id = fields.String(required=True)
    distance_m = fields.Float(required=True)


class OwnerRefSchema(Payload):
    DATACLASS = OwnerRef
    level = LevelField(required=True)
    area_id = fields.String(required=True)
    area_name = fields.String(required=True)


@dataclass(frozen=True)
class Message:
    """Base of every message. ``envelope`` is set on a received message (its id, correlation and
    trace), never compared."""
    TYPE: ClassVar[str] = ""
    envelope: object | None = field(default=None, compare=False, repr=False, kw_only=True)

    @property
    def correlation_id(self) -> str:
        """Messages about one case share its id as their correlation id."""
        return getattr(self, "case_id", "")


# -- intake → dispatch ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseReported(Message):
    TYPE: ClassVar[str] = "case.reported"
    case_id: str
    number: str
    category: str
    severity: str
    description: str
    location: Location | None
    reporter: str | None
    reported_at: datetime
    accuracy_m: float | None = None  # the phone's accuracy radius, metres
    client_time: datetime | None = None  # the phone's clock when the report was written
    #: no usable position: dispatch routes the case to ``reporter_grid`` (the grid worker's own grid)
    location_unverified: bool = False
    reporter_grid: str | None = None
    #: where the report came from (``shared.policy.CHANNELS``: grid_worker, staff, open311): whether it
    #: waits for acceptance (立案) is the policy's, per channel and category; None: sent before channels
    channel: str | None = None


class CaseReportedSchema(Payload):
    """Version 2 adds ``accuracy_m``, ``client_time``, ``location_unverified`` and ``reporter_grid``;
    ``location`` may be null (a grid worker's report without a position)."""
    DATACLASS = CaseReported
    VERSIONS = (1, 2)
    case_id = fields.String(required=True)
    number = fields.String(required=True)
    category = fields.String(required=True)
    severity = fields.String(load_default="normal")
    description = fields.String(required=True)
    location = fields.Nested(LocationSchema, required=True, allow_none=True)
    reporter = fields.String(allow_none=True, load_default=None)
    reported_at = TimeField(required=True)
    accuracy_m = fields.Float(allow_none=True, load_default=None, allow_nan=False)
    client_time = TimeField(allow_none=True, load_default=None)
    location_unverified = fields.Boolean(load_default=False)
    reporter_grid = fields.String(allow_none=True, load_default=None)
    # Added without a new version: an optional field, which older consumers ignore (EXCLUDE).
    channel = fields.String(allow_none=True, load_default=None)


# -- dispatch → escalation, intake ---------------------------------------------------------------------


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
    #: the report itself, so that command-center staff need no second call to intake
    description: str = ""
    location: Location | None = None
    reporter: str | None = None
    #: routed to the reporter's own grid: the phone had no usable position
    location_unverified: bool = False
    #: the report's channel (``CaseReported.channel``), passed on for acceptance (立案)
    channel: str | None = None


class CaseDispatchedSchema(WithOwners):
    """Version 2 writes ``start_level`` as a number (version 1: an area name) and carries the report
    (``description``, ``location``, ``reporter``) and, when true, ``location_unverified`` (an added
    field with a default: older readers ignore it)."""
    DATACLASS = CaseDispatched
    VERSIONS = (1, 2)
    case_id = fields.String(required=True)
    number = fields.String(required=True)
    category = fields.String(required=True)
    severity = fields.String(load_default="normal")
    reported_at = TimeField(required=True)
    areas_version = fields.Integer(required=True)
    start_level = LevelField(required=True)
    triage = fields.Boolean(load_default=False)
    candidates = fields.List(fields.Nested(CandidateSchema), load_default=list)
    description = fields.String(load_default="")
    location = fields.Nested(LocationSchema, allow_none=True, load_default=None)
    reporter = fields.String(allow_none=True, load_default=None)
    location_unverified = fields.Boolean(load_default=False)
    channel = fields.String(allow_none=True, load_default=None)  # added without a new version (optional)

    @post_load
    def _build(self, data, **kwargs):
        data["candidates"] = tuple(data["candidates"])
        return super()._build(data)


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
    #: escalation's: the case's revision after the transfer and the step's place in it (``revision_key``);
    #: None from dispatch, which keeps no revision
    revision: int | None = None
    revision_step: int = 0
    #: dispatch's proposal: the case revision its record had last taken from escalation when it computed
    #: the owners (None: the owners the case opened with); escalation ignores a proposal older than the
    #: case's last staff transfer (``ownership.reroute``)
    basis: int | None = None


class CaseTransferredSchema(WithOwners):
    """Version 2 writes ``level`` as a number (version 1: an area name). ``revision``,
    ``revision_step`` and ``basis`` are added without a new version (optional fields: older readers
    ignore them)."""
    DATACLASS = CaseTransferred
    VERSIONS = (1, 2)
    case_id = fields.String(required=True)
    level = LevelField(allow_none=True, load_default=None)
    reason = fields.String(required=True)
    actor = fields.String(required=True)
    revision = fields.Integer(strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1))
    revision_step = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    basis = fields.Integer(strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1))


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


class AreasPublishedSchema(Payload):
    DATACLASS = AreasPublished
    version = fields.Integer(required=True)
    areas = fields.List(TextRecord(PublishedArea, ("id", "name", "level"), ("parent",),
                                   choices={"level": AREA_LEVELS}), required=True)

    @post_load
    def _build(self, data, **kwargs):
        return AreasPublished(version=data["version"], areas=tuple(data["areas"]))


class DepartmentSchema(Payload):
    DATACLASS = Department
    id = fields.String(required=True)
    zh = fields.String(required=True)
    en = fields.String(required=True)
    serves = fields.String(required=True)
    leads = fields.List(fields.String(), load_default=list)
    co_handles = fields.List(fields.String(), load_default=list)

    @post_load
    def _build(self, data, **kwargs):
        return Department(**{**data, "leads": tuple(data["leads"]), "co_handles": tuple(data["co_handles"])})


@dataclass(frozen=True)
class DepartmentsPublished(Message):
    """The city's functional departments, all of them (a new import replaces the set)."""
    TYPE: ClassVar[str] = "departments.published"
    version: int
    departments: tuple[Department, ...]


class DepartmentsPublishedSchema(Payload):
    DATACLASS = DepartmentsPublished
    version = fields.Integer(required=True)
    departments = fields.List(fields.Nested(DepartmentSchema), required=True)

    @post_load
    def _build(self, data, **kwargs):
        return DepartmentsPublished(version=data["version"], departments=tuple(data["departments"]))


# -- escalation → intake, dispatch: the case's lifecycle -----------------------------------------------

def revision_key(message: Message) -> tuple[int, int] | None:
    """Where a message stands in its case's history: ``(revision, revision_step)``, or None when it
    carries no revision (dispatch's transfers, a producer from before revisions).

    ``revision`` is escalation's ``cases.revision`` after the save that published the message (the
    case's ETag); one save may publish several events (a deadline missed at two levels in one tick), and
    ``revision_step`` is the event's place among them (0, 1, …). Keys compare as tuples: a service that
    keeps a copy of a case (intake's report, dispatch's record) applies a message only if its key is
    greater than the last one it applied, so a redelivery, a message overtaken by a newer one, or two
    consumers taking one case's messages at once never move the copy backwards."""
    revision = getattr(message, "revision", None)
    return None if revision is None else (revision, getattr(message, "revision_step", 0))


#: What escalation publishes as a case moves through the closed loop: ``case.<type>`` for each timeline
#: step type, and the verification deadline's flag. ``case.verified`` and ``case.transferred`` are
#: messages of their own (intake's and dispatch's), with their own shapes.
LIFECYCLE: tuple[str, ...] = tuple(
    f"case.{step}" for step in (*StepType, "verification_overdue")
    if step not in (StepType.VERIFIED, StepType.TRANSFERRED))


class ScopeField(fields.Field):
    """An area scope: ``Owners`` known by id below headquarters, on the wire ``{"grid", "station",
    "subcenter"}`` (each an area id or null; another key is an error)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.scope()

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("not an object (grid, station, subcenter)")
        errors = {key: [f"Must be one of: {', '.join(SCOPED_AREA_LEVELS)}."] for key in value
                  if key not in SCOPED_AREA_LEVELS}
        errors.update({key: ["Not a valid string."] for key, got in value.items()
                       if key in SCOPED_AREA_LEVELS and got is not None and not isinstance(got, str)})
        if errors:
            raise ValidationError(errors)
        return Owners.from_ids(value)


@dataclass(frozen=True)
class CaseChanged(Message):
    """One step of a case's lifecycle, published as ``event`` (one of ``LIFECYCLE``): the case's
    status and owner after the step, who took it, and when. ``scheduled_at`` is the deadline a timer
    step fired for; ``detail`` what the step adds (``passed``, an extension ``amount``, ``reworks``).
    ``scope`` (on ``case.opened`` and ``case.rerouted``, the steps that set the owners) is the case's
    owners below headquarters, known by id (on the wire ``{"grid", "station", "subcenter"}``: an id or
    null): whose staff may read the case, which intake keeps beside the report. ``revision`` and
    ``revision_step`` order the events of one case (``revision_key``). ``reason`` is the step's note in
    English; ``reason_message`` (``{"code", "params"}``, ``shared.words.Message.to_json``) the same note as a
    message when the system wrote it (a refusal's reason, a merge, a deadline), for a reader's language."""
    event: str
    case_id: str
    status: str
    level: Level
    owner: OwnerRef
    at: datetime
    actor: str | None = None
    reason: str | None = None
    scheduled_at: datetime | None = None
    deadline: datetime | None = None
    detail: dict = field(default_factory=dict)
    scope: Owners | None = None
    revision: int | None = None
    revision_step: int = 0
    reason_message: dict | None = None

    @property
    def TYPE(self) -> str:  # noqa: N802 (the routing key, as every message's TYPE)
        return self.event


class CaseChangedSchema(Payload):
    """Shared by every ``LIFECYCLE`` type; the event name is the envelope's type, not a field."""
    DATACLASS = CaseChanged
    TYPES = LIFECYCLE
    case_id = fields.String(required=True)
    status = fields.String(required=True)
    level = LevelField(required=True)
    owner = fields.Nested(OwnerRefSchema, required=True)
    at = TimeField(required=True)
    actor = fields.String(allow_none=True, load_default=None)
    reason = fields.String(allow_none=True, load_default=None)
    scheduled_at = TimeField(allow_none=True, load_default=None)
    deadline = TimeField(allow_none=True, load_default=None)
    detail = fields.Dict(load_default=dict)
    # Added without a new version: optional fields, which older consumers ignore (EXCLUDE).
    scope = ScopeField(allow_none=True, load_default=None)
    revision = fields.Integer(strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1))
    revision_step = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    # ``reason`` as a message (``{"code", "params"}``, shared.words) when the system wrote it: the reader's
    # language is the consumer's to choose; ``reason`` stays its English text for consumers that predate it.
    reason_message = fields.Dict(allow_none=True, load_default=None)

    @pre_dump
    def _without_event(self, obj, **kwargs):
        data = self._as_dict(obj)
        data.pop("event", None)
        return data

    @post_load
    def _build(self, data, **kwargs):
        return CaseChanged(event="", **data)


# -- intake → escalation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseVerified(Message):
    TYPE: ClassVar[str] = "case.verified"
    case_id: str
    passed: bool
    verifier: str
    at: datetime
    note: str = ""


class CaseVerifiedSchema(Payload):
    DATACLASS = CaseVerified
    case_id = fields.String(required=True)
    passed = fields.Boolean(required=True)
    verifier = fields.String(required=True)
    note = fields.String(load_default="")
    at = TimeField(required=True)
