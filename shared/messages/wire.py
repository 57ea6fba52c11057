"""The building blocks of the message schemas: how a level, a time and a dataclass go on the wire.

Every payload schema derives from ``Payload``: it dumps a dataclass (or a dict) and loads into its
``DATACLASS``, ignores fields it does not know (``EXCLUDE``: a newer producer may add some), and
names the versions it reads in ``VERSIONS`` (the last one is what producers write).
"""
from __future__ import annotations

from dataclasses import fields as dataclass_fields

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_dump

from shared.clock import isoformat, parse_time
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
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValidationError("not an ISO 8601 time") from exc


class Payload(Schema):
    DATACLASS: type = dict
    VERSIONS: tuple[int, ...] = (1,)

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
