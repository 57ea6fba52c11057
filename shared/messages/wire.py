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


class TextRecord(fields.Field):
    """A small dataclass whose fields are all text, as a JSON object: the ``keys`` must be strings,
    the ``optional_keys`` strings or null (absent: None), ``choices`` limits a key's values;
    other keys are ignored. A field rather than a nested schema because these travel by the thousand:
    four area references in every ``case.dispatched`` (reading one took 67 µs nested, 41 µs so, by
    ``timeit``) and every area of a city in ``areas.published``."""

    def __init__(self, dataclass: type, keys: tuple[str, ...], optional_keys: tuple[str, ...] = (), *,
                 choices: dict[str, tuple[str, ...]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.dataclass, self.keys, self.optional_keys = dataclass, keys, optional_keys
        self.choices = choices or {}

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return {name: getattr(value, name) for name in (*self.keys, *self.optional_keys)}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError(f"not an object ({', '.join(self.keys + self.optional_keys)})")
        values = {name: value.get(name) for name in (*self.keys, *self.optional_keys)}
        errors = {name: ["Not a valid string."] for name, got in values.items()
                  if not isinstance(got, str) and (got is not None or name in self.keys)}
        errors.update({name: [f"Must be one of: {', '.join(allowed)}."] for name, allowed in self.choices.items()
                       if name not in errors and values[name] is not None and values[name] not in allowed})
        if errors:
            raise ValidationError(errors)
        return self.dataclass(**values)


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
