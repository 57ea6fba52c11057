"""The registry of message types and versions, and the two doors through which a message passes.

Built from the schemas in ``shared.messages.events``: every schema whose dataclass has a ``TYPE``
(or that lists its ``TYPES``) is registered for each of its ``VERSIONS``; producers write the last. A producer's
message is a typed dataclass, dumped by its schema; a consumer loads (and so checks) it with ``EXCLUDE``,
and a message its schema refuses goes to the dead letters with the reason, to be replayed once the
producer is fixed (``gridcase dlq``). The producer does not load its own dump again to check it: that
doubled the cost of every message (0.13 ms of 0.25 ms per message, cProfile over 5,000 opened cases),
a fifth of the pipeline's CPU per case, and a typed dataclass already fixes the fields. Tests load
every message type's dump (``tests/unit/test_messages.py``). A level is written as its number (1–4).
Both doors use the schemas compiled by ``shared.messages.codec`` (the same answers, a fifth of the
cost); a payload the compiled path cannot decide is loaded by the schema itself.
"""
from __future__ import annotations

from marshmallow import Schema, ValidationError

import shared.messages.events as events
from shared.messages.codec import Fallback, compile_schema
from shared.messages.envelope import Envelope, MessageError
from shared.messages.wire import Payload


def _registered() -> dict[str, type[Payload]]:
    found = {}
    for value in vars(events).values():
        if isinstance(value, type) and issubclass(value, Payload):
            types = getattr(value, "TYPES", None) or [getattr(value.DATACLASS, "TYPE", "")]
            found.update({t: value for t in types if isinstance(t, str) and t})
    return found


#: type → its schema class
REGISTRY: dict[str, type[Payload]] = _registered()
MESSAGE_TYPES = tuple(sorted(REGISTRY))
# Schema instances are stateless once built, and building one costs more than using it.
_PRODUCING: dict[str, Schema] = {t: cls() for t, cls in REGISTRY.items()}
_CONSUMING: dict[tuple[str, int], Schema] = {(t, v): cls() for t, cls in REGISTRY.items() for v in cls.VERSIONS}
_DUMPS = {t: codec[1] for t, schema in _PRODUCING.items() if (codec := compile_schema(schema))}
_LOADS = {key: codec[0] for key, schema in _CONSUMING.items() if (codec := compile_schema(schema))}


def make_message(message: events.Message, *, occurred_at, producer: str, correlation_id: str = "",
                 traceparent: str | None = None) -> Envelope:
    """Dump a typed message with its schema and wrap it in an envelope (an unknown type: ``MessageError``)."""
    schema = _PRODUCING.get(message.TYPE)
    if schema is None:
        raise MessageError(f"unknown message type {message.TYPE!r}")
    dump = _DUMPS.get(message.TYPE)
    payload = schema.dump(message) if dump is None else dump(message)
    return Envelope(type=message.TYPE, payload=payload, occurred_at=occurred_at, producer=producer,
                    version=REGISTRY[message.TYPE].VERSIONS[-1],
                    correlation_id=correlation_id or message.correlation_id, traceparent=traceparent)


def read_message(envelope: Envelope) -> events.Message:
    """The typed message in an envelope (fields this version does not know are ignored); a payload
    that does not match its schema, or an unknown type or version, is a ``MessageError``."""
    schema = _CONSUMING.get((envelope.type, envelope.version))
    if schema is None:
        raise MessageError(f"unknown message type {envelope.type!r} version {envelope.version}")
    load = _LOADS.get((envelope.type, envelope.version))
    try:
        try:
            if load is None or type(envelope.payload) is not dict:
                raise Fallback
            message = load(envelope.payload)
        except Fallback:
            message = schema.load(envelope.payload)
    except (ValidationError, TypeError, ValueError) as exc:
        detail = exc.messages if isinstance(exc, ValidationError) else exc
        raise MessageError(f"{envelope.type} v{envelope.version} payload invalid: {detail}") from exc
    object.__setattr__(message, "envelope", envelope)
    if isinstance(message, events.CaseChanged):
        object.__setattr__(message, "event", envelope.type)
    return message
