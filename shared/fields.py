"""Marshmallow fields for HTTP input that every database can store: bounded text and strict numbers.

Why: JSON parses text that no database holds. A lone UTF-16 surrogate (``"\\ud83d"``, half an emoji cut
by a phone) cannot be encoded as UTF-8, so hashing or storing it fails; PostgreSQL refuses NUL bytes
in text and enforces ``VARCHAR(n)`` while SQLite stores both. The schema, not the database, must refuse
first — with a 422 naming the field — so that SQLite and PostgreSQL answer alike.

- ``Text(max_length, multiline=False)``: a string of at most ``max_length`` characters (the length of
  its database column, see ``LIMITS``) with no lone surrogate and no control character (Unicode category
  ``Cc``: NUL, the other C0 controls, DEL and the C1 controls). ``multiline=True`` allows the tab,
  line feed and carriage return that a person types into a description.
- ``JsonFloat`` / ``JsonInteger`` / ``JsonBoolean``: a JSON body's numbers and booleans must be JSON
  numbers and booleans; ``"lon": " 1_02.2 "`` or ``"activate": "yes"`` is refused instead of being
  converted by Python's lenient ``float()``/``int()``.
- ``QueryFloat`` / ``QueryInteger`` / ``QueryBoolean``: a query string is text by nature, so its numbers
  are parsed, but strictly: an optional minus sign, digits, an optional fraction and exponent — no
  underscores, whitespace, ``+``, ``inf`` or ``nan``; a boolean is ``true``/``1`` or ``false``/``0``.

- ``Instant`` / ``Day`` and ``parse_instant(text)``: every time and date a client sends (a JSON body's
  ``client_time``, a query's ``from``/``to``, Open311's ``start_date``) is ISO 8601 and lies in
  ``[EARLIEST, LATEST)``. Python represents years 1 to 9999, but ``0001-01-01T00:00:00+14:00`` is
  year 0 in UTC and cannot be converted (an ``OverflowError``, a 500), and PostgreSQL and SQLite
  store different ranges: the bound is checked where the text is parsed, before anything converts it.
- ``strict_decimal(text)``: the query-string number rule for code outside a schema (Open311's form).

``storable_problem(text)`` is the character rule alone, for code that checks text outside a schema
(token claims, area ids and names read from GeoJSON files).
"""
from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from marshmallow import ValidationError, fields, validate

from shared.words import Invalid, Said, say

#: Column lengths of the text that reaches a database (see each service's migrations). A schema field
#: takes its ``max_length`` from here so that the schema and the column cannot drift apart.
LIMITS = {
    "area_id": 64,  # dispatch areas.id / parent, escalation cases.*_id
    "area_name": 200,  # dispatch areas.name
    "source": 200,  # dispatch area_versions.source
    "category": 64,  # intake reports.category, escalation cases.category
    "user": 128,  # intake reports.reporter, escalation timeline.actor (a token's ``sub``)
    "idempotency_key": 128,  # intake reports.idempotency_key
    "description": 2000,  # intake reports.description (TEXT; the product's limit)
    "reason": 500,  # a transfer's reason (escalation timeline.note, TEXT; the product's limit)
    "severity": 16,  # intake reports.severity, escalation cases.severity
    "resource_id": 64,  # any id in a URL path: case and report ids are 36-character UUIDs
}

#: The instants a client may send, from the Unix epoch (what a phone whose clock was reset says; its report
#: is still taken, the phone's clock being only kept beside the server's) to 2100, excluded.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

_MULTILINE_OK = frozenset("\t\n\r")
_QUERY_FLOAT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
_QUERY_INTEGER = re.compile(r"-?\d+", re.ASCII)
#: The character rule as a JSON-Schema pattern, for the OpenAPI description (surrogates cannot be written
#: in a pattern; they are refused all the same).
PATTERN_SINGLE_LINE = r"^[^\u0000-\u001f\u007f-\u009f]*$"
PATTERN_MULTILINE = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"


def storable_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why ``text`` cannot be stored as it is, or None when it can.

    The reason names the first offending character and its position (0-based), e.g.
    ``"contains a lone UTF-16 surrogate (U+D83D) at position 9"`` or ``"contains a NUL character at
    position 0"``. Line breaks and tabs are allowed only when ``multiline``.
    """
    if text.isprintable():  # the common case, in C: no control, surrogate or separator character at all
        return None
    for position, char in enumerate(text):
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return Said("text.surrogate", char=f"U+{code:04X}", position=position)
        if unicodedata.category(char) == "Cc" and not (multiline and char in _MULTILINE_OK):
            if code == 0:
                return Said("text.nul", position=position)
            return Said("text.control", char=f"U+{code:04X}", position=position)
    return None


class _TextRule(validate.Validator):
    """The character rule of ``storable_problem`` as a marshmallow validator."""

    def __init__(self, multiline: bool):
        self.multiline = multiline

    def __call__(self, value: str) -> str:
        problem = storable_problem(value, multiline=self.multiline)
        if problem:
            raise ValidationError(problem)
        return value


class Text(fields.String):
    """A string that fits its column: ``min_length``..``max_length`` characters, no control characters
    (tab, line feed and carriage return allowed when ``multiline``), no lone surrogates. ``max_length``
    is required: every stored string has a limit, and it is the column's (``LIMITS``)."""

    def __init__(self, max_length: int, *, min_length: int = 0, multiline: bool = False, **kwargs):
        rules = [validate.Length(min_length or None, max_length), _TextRule(multiline)]
        extra = kwargs.pop("validate", None)
        if extra is not None:
            rules += list(extra) if isinstance(extra, list | tuple) else [extra]
        metadata = {"pattern": PATTERN_MULTILINE if multiline else PATTERN_SINGLE_LINE,
                    **kwargs.pop("metadata", {})}
        super().__init__(validate=rules, metadata=metadata, **kwargs)


def _not_bool_number(field: fields.Field, value) -> None:
    if value is True or value is False or not isinstance(value, int | float):
        raise field.make_error("json_number", input=value)


class JsonFloat(fields.Float):
    """A JSON number (integer or fraction), never a string or a boolean; NaN and infinities refused
    unless ``allow_nan``."""

    default_error_messages = {"json_number": say("schema.json_number")}

    def _deserialize(self, value, attr, data, **kwargs):
        _not_bool_number(self, value)
        return super()._deserialize(value, attr, data, **kwargs)


class JsonInteger(fields.Integer):
    """A JSON integer (``2``; ``2.0`` is refused as any non-integral input is by ``strict``), never a
    string or a boolean."""

    default_error_messages = {"json_number": say("schema.json_integer")}

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        _not_bool_number(self, value)
        return super()._deserialize(value, attr, data, **kwargs)


class JsonBoolean(fields.Boolean):
    """A JSON ``true`` or ``false``; ``"true"``, ``1`` or ``"yes"`` are refused."""

    default_error_messages = {"json_boolean": say("schema.json_boolean")}

    def _deserialize(self, value, attr, data, **kwargs):
        if value is not True and value is not False:
            raise self.make_error("json_boolean", input=value)
        return value


class QueryFloat(fields.Float):
    """A decimal number in a query string: ``-12``, ``102.264``, ``.5``, ``1e-3``. No whitespace,
    underscores, ``+``, hexadecimal, ``inf`` or ``nan`` (what Python's ``float()`` would also accept)."""

    default_error_messages = {"strict": say("schema.query_decimal")}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _QUERY_FLOAT.fullmatch(value):
            raise self.make_error("strict", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class QueryBoolean(fields.Boolean):
    """A boolean in a query string: ``true``/``1`` or ``false``/``0`` (not ``yes``, ``on`` or ``TRUE``)."""

    truthy = frozenset({"true", "1"})
    falsy = frozenset({"false", "0"})
    default_error_messages = {"invalid": say("schema.query_boolean")}


class QueryInteger(fields.Integer):
    """An integer in a query string: ``-12``, ``3``. No whitespace, underscores, ``+`` or fractions."""

    default_error_messages = {"strict": say("schema.query_integer")}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _QUERY_INTEGER.fullmatch(value) or len(value) > 18:
            raise self.make_error("strict", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


def strict_decimal(text: str) -> float:
    """``text`` as a number under ``QueryFloat``'s rule (``-12``, ``102.264``, ``.5``, ``1e-3``; no
    whitespace, underscores, ``+``, ``inf`` or ``nan``); ValueError otherwise."""
    if not isinstance(text, str) or not _QUERY_FLOAT.fullmatch(text):
        raise ValueError(f"not a decimal number such as 102.264: {text[:40]!r}")
    return float(text)


def _out_of_range() -> Said:
    return Said("schema.out_of_range", earliest=f"{EARLIEST:%Y-%m-%d}", latest=f"{LATEST:%Y-%m-%d}")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date-time with an offset (``2026-01-05T09:30:00+08:00``, ``…Z``) → an aware datetime in
    UTC within ``[EARLIEST, LATEST)``; ValueError saying what is wrong (no offset, not a date-time,
    out of range)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        value = None
    if value is None:
        raise Invalid("schema.not_an_instant")
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("schema.instant_without_offset")
    if not EARLIEST <= value < LATEST:  # aware comparison: no conversion, so no overflow
        raise Invalid(_out_of_range().message.code, **_out_of_range().message.params)
    return value.astimezone(UTC)


class Instant(fields.AwareDateTime):
    """An ISO 8601 date-time with an offset, within ``[EARLIEST, LATEST)``, loaded as a UTC datetime."""

    default_error_messages = {"range": _out_of_range()}

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        loaded = super()._deserialize(value, attr, data, **kwargs)
        if not EARLIEST <= loaded < LATEST:
            raise ValidationError(_out_of_range())
        return loaded.astimezone(UTC)


class Day(fields.Date):
    """An ISO 8601 date (``2026-01-05``) whose day lies within ``[EARLIEST, LATEST)``."""

    default_error_messages = {"range": _out_of_range()}

    def _deserialize(self, value, attr, data, **kwargs):
        loaded = super()._deserialize(value, attr, data, **kwargs)
        if not EARLIEST.date() <= loaded < LATEST.date():
            raise ValidationError(_out_of_range())
        return loaded

