"""The JSON envelope every message travels in.

``{id, type, version, occurred_at, correlation_id, producer, payload}`` and an optional
``traceparent`` (W3C trace context, so one case can be followed through every service's logs); the
routing key is the type. Consumers tolerate unknown fields (marshmallow ``EXCLUDE``) so producers can add fields
without a lock-step deploy.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from shared.clock import isoformat, utc


class MessageError(ValueError):
    """A message that cannot be decoded or does not match its schema: a poison message."""


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.UUID(required=True)
    type = fields.String(required=True)
    version = fields.Integer(required=True)
    occurred_at = fields.AwareDateTime(required=True, default_timezone=None)
    correlation_id = fields.String(required=True)
    producer = fields.String(required=True)
    payload = fields.Dict(required=True)
    traceparent = fields.String(allow_none=True, load_default=None)


_ENVELOPE = EnvelopeSchema()
#: an ``occurred_at`` as producers write it, which ``datetime.fromisoformat`` reads as marshmallow does
_PLAIN_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?(Z|[+-]\d{2}:\d{2})")
_TEXT = ("type", "correlation_id", "producer")


def _plain(raw: object) -> Envelope | None:
    """The envelope when every field is of its plain type (as producers write it), else None: the
    schema then decides, with its own error messages."""
    if type(raw) is not dict:
        return None
    ident, version, occurred = raw.get("id"), raw.get("version"), raw.get("occurred_at")
    payload, trace = raw.get("payload"), raw.get("traceparent")
    if type(ident) is not str or type(version) is not int or type(payload) is not dict \
            or type(occurred) is not str or not _PLAIN_TIME.fullmatch(occurred) \
            or not (trace is None or type(trace) is str) or any(type(raw.get(key)) is not str for key in _TEXT):
        return None
    try:
        ident = str(uuid.UUID(ident))
    except ValueError:
        return None
    return Envelope(type=raw["type"], payload=dict(payload), occurred_at=utc(datetime.fromisoformat(occurred)),
                    producer=raw["producer"], version=version, id=ident, correlation_id=raw["correlation_id"],
                    traceparent=trace)


@dataclass(frozen=True)
class Envelope:
    type: str
    payload: dict
    occurred_at: datetime
    producer: str
    version: int = 1
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str = ""
    #: W3C trace context of the request or message that caused this one (``00-<trace>-<span>-01``).
    traceparent: str | None = None

    def to_json(self) -> str:
        body = {"id": self.id, "type": self.type, "version": self.version,
                "occurred_at": isoformat(self.occurred_at), "correlation_id": self.correlation_id or self.id,
                "producer": self.producer, "payload": self.payload}
        if self.traceparent:
            body["traceparent"] = self.traceparent
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, body: str | bytes) -> Envelope:
        try:
            raw = json.loads(body)
            plain = _plain(raw)
            if plain is not None:
                return plain
            data = _ENVELOPE.load(raw)
        except (ValueError, TypeError, ValidationError) as exc:
            raise MessageError(f"not a gridcase envelope: {exc}") from exc
        return cls(type=data["type"], payload=data["payload"], occurred_at=utc(data["occurred_at"]),
                   producer=data["producer"], version=data["version"], id=str(data["id"]),
                   correlation_id=data["correlation_id"], traceparent=data["traceparent"])
