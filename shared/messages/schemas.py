"""The wire form of every message: one versioned marshmallow schema per type, loading into the
dataclasses of ``shared.messages.events``.

A producer's message is dumped and then checked strictly (``RAISE``: no field the schema does not
declare); a consumer loads with ``EXCLUDE`` (fields added later by a newer producer are ignored).
A level is written as its number (1–4) in every message. Version 2 of ``case.dispatched`` and
``case.transferred`` made that so (version 1 wrote the area name, ``"station"``); both versions
are still read.
"""
from __future__ import annotations

from dataclasses import fields as dataclass_fields

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, pre_dump, validate

from shared.clock import isoformat, parse_time
from shared.messages import events as e
from shared.messages.envelope import Envelope, MessageError
from shared.vocabulary import AREA_LEVELS, Level


class LevelField(fields.Field):
    """A level: written as its number; read from a number or (version 1) an area name."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else int(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return Level.of(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"not a level (1-4 or {', '.join(AREA_LEVELS)})") from exc


class TimeField(fields.Field):
    """An aware UTC time as ISO 8601 (``2026-01-05T09:00:00.000Z``)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else isoformat(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_time(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError("not an ISO 8601 time") from exc


class _Payload(Schema):
    """Loads into ``DATACLASS``; nested schemas set it too."""
    DATACLASS: type = dict

    class Meta:
        unknown = EXCLUDE

    @pre_dump
    def _as_dict(self, obj, **kwargs):
        if isinstance(obj, dict):
            return obj
        return {f.name: getattr(obj, f.name) for f in dataclass_fields(obj) if f.name != "envelope"}

    @post_load
    def _build(self, data, **kwargs):
        return self.DATACLASS(**data)


class AreaRefSchema(_Payload):
    DATACLASS = e.AreaRef
    id = fields.String(required=True)
    name = fields.String(required=True)


class LocationSchema(_Payload):
    DATACLASS = e.Location
    lon = fields.Float(required=True, validate=validate.Range(-180, 180), allow_nan=False)
    lat = fields.Float(required=True, validate=validate.Range(-90, 90), allow_nan=False)


class CandidateSchema(_Payload):
    DATACLASS = e.Candidate
    id = fields.String(required=True)
    distance_m = fields.Float(required=True)


class _WithOwners(_Payload):
    """Owners travel flat (``grid``, ``station``, ``subcenter``, ``hq``), as version 1 wrote them."""
    grid = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    station = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    subcenter = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    hq = fields.Nested(AreaRefSchema, required=True)

    @pre_dump
    def _flatten_owners(self, obj, **kwargs):
        data = self._as_dict(obj)
        owners = data.pop("owners", None)
        return {**data, **{name: getattr(owners, name) for name in AREA_LEVELS}} if owners else data

    @post_load
    def _build(self, data, **kwargs):
        owners = e.Owners(**{name: data.pop(name) for name in AREA_LEVELS})
        return self.DATACLASS(owners=owners, **data)


class CaseReportedSchema(_Payload):
    DATACLASS = e.CaseReported
    case_id = fields.String(required=True)
    number = fields.String(required=True)
    category = fields.String(required=True)
    severity = fields.String(load_default="normal")
    description = fields.String(required=True)
    location = fields.Nested(LocationSchema, required=True)
    reporter = fields.String(allow_none=True, load_default=None)
    reported_at = TimeField(required=True)


class CaseDispatchedSchema(_WithOwners):
    DATACLASS = e.CaseDispatched
    case_id = fields.String(required=True)
    number = fields.String(required=True)
    category = fields.String(required=True)
    severity = fields.String(load_default="normal")
    reported_at = TimeField(required=True)
    areas_version = fields.Integer(required=True)
    start_level = LevelField(required=True)
    triage = fields.Boolean(load_default=False)
    candidates = fields.List(fields.Nested(CandidateSchema), load_default=list)

    @post_load
    def _build(self, data, **kwargs):
        data["candidates"] = tuple(data["candidates"])
        return super()._build(data)


class CaseTransferredSchema(_WithOwners):
    DATACLASS = e.CaseTransferred
    case_id = fields.String(required=True)
    level = LevelField(allow_none=True, load_default=None)
    reason = fields.String(required=True)
    actor = fields.String(required=True)


class OwnerRefSchema(_Payload):
    DATACLASS = e.OwnerRef
    level = LevelField(required=True)
    area_id = fields.String(required=True)
    area_name = fields.String(required=True)


def _case_changed(dataclass: type) -> type[Schema]:
    """The schema of one lifecycle event type (they share a shape, not a type)."""
    return type(f"{dataclass.__name__}Schema", (_Payload,), {
        "DATACLASS": dataclass,
        "case_id": fields.String(required=True),
        "status": fields.String(required=True),
        "level": LevelField(required=True),
        "owner": fields.Nested(OwnerRefSchema, required=True),
        "at": TimeField(required=True),
        "actor": fields.String(allow_none=True, load_default=None),
        "reason": fields.String(allow_none=True, load_default=None),
    })


class CaseVerifiedSchema(_Payload):
    DATACLASS = e.CaseVerified
    case_id = fields.String(required=True)
    passed = fields.Boolean(required=True)
    verifier = fields.String(required=True)
    note = fields.String(load_default="")
    at = TimeField(required=True)


class PublishedAreaSchema(_Payload):
    DATACLASS = e.PublishedArea
    id = fields.String(required=True)
    name = fields.String(required=True)
    level = fields.String(required=True, validate=validate.OneOf(AREA_LEVELS))
    parent = fields.String(allow_none=True, load_default=None)


class AreasPublishedSchema(_Payload):
    DATACLASS = e.AreasPublished
    version = fields.Integer(required=True)
    areas = fields.List(fields.Nested(PublishedAreaSchema), required=True)

    @post_load
    def _build(self, data, **kwargs):
        return e.AreasPublished(version=data["version"], areas=tuple(data["areas"]))


#: type → (the version producers write, {version read: schema class}).
REGISTRY: dict[str, tuple[int, dict[int, type[Schema]]]] = {
    e.CaseReported.TYPE: (1, {1: CaseReportedSchema}),
    e.CaseDispatched.TYPE: (2, {1: CaseDispatchedSchema, 2: CaseDispatchedSchema}),
    e.CaseTransferred.TYPE: (2, {1: CaseTransferredSchema, 2: CaseTransferredSchema}),
    e.CaseVerified.TYPE: (1, {1: CaseVerifiedSchema}),
    e.AreasPublished.TYPE: (1, {1: AreasPublishedSchema}),
    **{cls.TYPE: (1, {1: _case_changed(cls)}) for cls in (e.CaseEscalated, e.CaseResolved, e.CaseReworked,
                                                          e.CaseClosed)},
}
MESSAGE_TYPES = tuple(sorted(REGISTRY))
# Schema instances are stateless once built, and building one costs more than using it.
_PRODUCING = {t: schemas[current](unknown=RAISE) for t, (current, schemas) in REGISTRY.items()}
_CONSUMING = {(t, v): cls() for t, (_, schemas) in REGISTRY.items() for v, cls in schemas.items()}


def make_message(message: e.Message, *, occurred_at, producer: str, correlation_id: str = "",
                 traceparent: str | None = None) -> Envelope:
    """Dump a typed message, check it strictly against its schema, and wrap it in an envelope."""
    if message.TYPE not in REGISTRY:
        raise MessageError(f"unknown message type {message.TYPE!r}")
    schema = _PRODUCING[message.TYPE]
    payload = schema.dump(message)
    errors = schema.validate(payload)
    if errors:
        raise MessageError(f"{message.TYPE} payload invalid: {errors}")
    return Envelope(type=message.TYPE, payload=payload, occurred_at=occurred_at, producer=producer,
                    version=REGISTRY[message.TYPE][0], correlation_id=correlation_id or message.correlation_id,
                    traceparent=traceparent)


def read_message(envelope: Envelope) -> e.Message:
    """The typed message in an envelope (fields this version does not know are ignored); a payload
    that does not match its schema, or an unknown type or version, is a ``MessageError``."""
    schema = _CONSUMING.get((envelope.type, envelope.version))
    if schema is None:
        raise MessageError(f"unknown message type {envelope.type!r} version {envelope.version}")
    try:
        message = schema.load(envelope.payload)
    except (ValidationError, TypeError, ValueError) as exc:
        detail = exc.messages if isinstance(exc, ValidationError) else exc
        raise MessageError(f"{envelope.type} v{envelope.version} payload invalid: {detail}") from exc
    object.__setattr__(message, "envelope", envelope)
    return message
