"""Versioned payload schemas, one per message type. Events are past tense.

A type's schema validates what a producer writes (``RAISE``) and what a consumer reads
(``EXCLUDE``: unknown fields are tolerated). Types not yet produced by any service are declared
here so the contract is visible in one place.
"""
from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from shared.messages.envelope import Envelope, MessageError

LEVELS = ("grid", "station", "subcenter", "hq")


class _Payload(Schema):
    class Meta:
        unknown = EXCLUDE


class LocationSchema(_Payload):
    lon = fields.Float(required=True, validate=validate.Range(-180, 180), allow_nan=False)
    lat = fields.Float(required=True, validate=validate.Range(-90, 90), allow_nan=False)


class AreaRefSchema(_Payload):
    id = fields.String(required=True)
    name = fields.String(required=True)


class CaseReported(_Payload):
    case_id = fields.String(required=True)
    number = fields.String(required=True)
    category = fields.String(required=True)
    severity = fields.String(load_default="normal")
    description = fields.String(required=True)
    location = fields.Nested(LocationSchema, required=True)
    reporter = fields.String(allow_none=True, load_default=None)
    reported_at = fields.String(required=True)


class CaseDispatched(_Payload):
    case_id = fields.String(required=True)
    number = fields.String(required=True)
    category = fields.String(required=True)
    severity = fields.String(load_default="normal")
    reported_at = fields.String(required=True)
    areas_version = fields.Integer(required=True)
    start_level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    grid = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    station = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    subcenter = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    hq = fields.Nested(AreaRefSchema, required=True)
    triage = fields.Boolean(load_default=False)
    candidates = fields.List(fields.Dict(), load_default=list)


class CaseTransition(_Payload):
    """Shared shape of the lifecycle events escalation publishes (status back to intake)."""
    case_id = fields.String(required=True)
    status = fields.String(required=True)
    level = fields.Integer(required=True)
    owner = fields.Dict(required=True)
    at = fields.String(required=True)
    actor = fields.String(allow_none=True, load_default=None)
    reason = fields.String(allow_none=True, load_default=None)


class CaseVerified(_Payload):
    case_id = fields.String(required=True)
    passed = fields.Boolean(required=True)
    verifier = fields.String(required=True)
    note = fields.String(load_default="")
    at = fields.String(required=True)


class CaseTransferred(_Payload):
    """New owners for a case. ``level`` set: staff moved it there (it restarts at that level);
    ``level`` null: a new area version re-routed it (it keeps its level and deadline)."""
    case_id = fields.String(required=True)
    level = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(LEVELS))
    grid = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    station = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    subcenter = fields.Nested(AreaRefSchema, allow_none=True, load_default=None)
    hq = fields.Nested(AreaRefSchema, required=True)
    reason = fields.String(required=True)
    actor = fields.String(required=True)


class AreasPublished(_Payload):
    version = fields.Integer(required=True)
    areas = fields.List(fields.Dict(), required=True)


#: (type, version) → payload schema class.
SCHEMAS: dict[tuple[str, int], type[Schema]] = {
    ("case.reported", 1): CaseReported,
    ("case.dispatched", 1): CaseDispatched,
    ("case.escalated", 1): CaseTransition,
    ("case.resolved", 1): CaseTransition,
    ("case.closed", 1): CaseTransition,
    ("case.reworked", 1): CaseTransition,
    ("case.verified", 1): CaseVerified,
    ("case.transferred", 1): CaseTransferred,
    ("areas.published", 1): AreasPublished,
}

MESSAGE_TYPES = tuple(sorted({t for t, _ in SCHEMAS}))
# Schema instances are stateless once built, and building one costs more than using it.
_PRODUCING = {key: cls(unknown=RAISE) for key, cls in SCHEMAS.items()}
_CONSUMING = {key: cls() for key, cls in SCHEMAS.items()}


def _schema(schemas: dict, type_: str, version: int) -> Schema:
    try:
        return schemas[(type_, version)]
    except KeyError:
        raise MessageError(f"unknown message type {type_!r} version {version}") from None


def make_message(type_: str, payload: dict, *, occurred_at, producer: str, correlation_id: str = "",
                 version: int = 1) -> Envelope:
    """Validate a payload strictly and wrap it in an envelope."""
    errors = _schema(_PRODUCING, type_, version).validate(payload)
    if errors:
        raise MessageError(f"{type_} v{version} payload invalid: {errors}")
    return Envelope(type=type_, payload=payload, occurred_at=occurred_at, producer=producer,
                    version=version, correlation_id=correlation_id)


def read_payload(envelope: Envelope) -> dict:
    """Validate and load an incoming payload, ignoring fields this version does not know."""
    try:
        return _schema(_CONSUMING, envelope.type, envelope.version).load(envelope.payload)
    except ValidationError as exc:
        raise MessageError(f"{envelope.type} v{envelope.version} payload invalid: {exc.messages}") from exc
