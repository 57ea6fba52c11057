"""Compiled load and dump for the payload schemas: the same answers as marshmallow's, without its
per-field machinery on the common path.

Every message crosses marshmallow twice (dumped by its producer, loaded by each consumer), and its
generic path (field lookup, error store, hooks resolved per call) cost more than the rest of a
consumer's Python work together. ``compile_schema`` turns a ``Payload`` schema into two plain closures
built once from its declared fields:

- ``load(data)`` takes the fast path only for what it can decide exactly: each value already of its
  field's plain JSON type (a string, an int that is not a bool, a finite number, a bool, an object, a
  list), ``None`` where the field allows it, a missing optional field's ``load_default``; the project's
  own fields (``LevelField``, ``TimeField``, ``TextRecord``, ``ScopeField``) and every validator run as
  they are. Anything else (a missing required field, a wrong type, a validator's refusal) raises
  ``Fallback``, and the caller loads the payload with the schema itself, so a bad message is refused
  with marshmallow's own error messages and an unusual but valid one (a number sent as a string) is
  read as before. The schema's ``post_load`` hooks build the dataclass, as marshmallow would.
- ``dump(obj)`` runs the schema's ``pre_dump`` hooks, then writes each field: a value of its plain type
  as it is, anything else through the field's own ``_serialize`` (what marshmallow calls).

A schema with a field kind not listed here, or with hooks other than ``pre_dump``/``post_load``, is not
compiled (``compile_schema`` returns None) and keeps marshmallow's path. ``tests/unit/test_message_codec.py``
checks both closures against marshmallow for every registered type.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from marshmallow import Schema, ValidationError, fields, missing
from marshmallow.decorators import POST_DUMP, POST_LOAD, PRE_DUMP, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

from shared.messages.wire import LevelField, TextRecord, TimeField


class Fallback(Exception):
    """The compiled path cannot decide this payload: load it with the schema."""


#: fields whose own ``_deserialize`` / ``_serialize`` are called directly (they hold no per-call state)
_OWN = (LevelField, TimeField, TextRecord)


def _own_fields() -> tuple[type, ...]:
    from shared.messages.events import ScopeField
    return (*_OWN, ScopeField)


#: Fields whose JSON value is loaded as it is when it has exactly this Python type.
_EXACT = {fields.String: str, fields.Integer: int, fields.Boolean: bool}


def _convert(field: fields.Field, name: str) -> Callable[[object, dict], object] | None:
    """A function ``(value, data) -> loaded`` for a non-None value, raising ``Fallback``; None: unsupported."""
    kind = type(field)
    if kind in _EXACT:
        exact = _EXACT[kind]

        def convert(value, data):
            if type(value) is exact:
                return value
            raise Fallback
    elif kind is fields.Float:
        finite_only = not field.allow_nan

        def convert(value, data):
            if type(value) is float or type(value) is int:
                if finite_only and not math.isfinite(value):
                    raise Fallback
                return float(value)
            raise Fallback
    elif kind is fields.Dict and field.key_field is None and field.value_field is None:
        def convert(value, data):
            if type(value) is dict:
                return dict(value)
            raise Fallback
    elif kind is fields.Nested and isinstance(field.nested, type) and not field.many:
        codec = compile_schema(field.schema)
        if codec is None:
            return None
        load = codec[0]

        def convert(value, data):
            if type(value) is dict:
                return load(value)
            raise Fallback
    elif kind is fields.List:
        inner = _convert(field.inner, name)
        if inner is None:
            return None
        inner_validators = tuple(field.inner.validators)
        if inner_validators:
            return None

        def convert(value, data):
            if type(value) is list:
                return [_none(field.inner) if each is None else inner(each, data) for each in value]
            raise Fallback
    elif isinstance(field, _own_fields()):
        deserialize = field._deserialize

        def convert(value, data):
            try:
                return deserialize(value, name, data)
            except ValidationError:
                raise Fallback from None
    else:
        return None
    validators = tuple(field.validators)
    if not validators:
        return convert
    plain = convert

    def validated(value, data):
        out = plain(value, data)
        try:
            for validator in validators:
                if validator(out) is False:
                    raise Fallback
        except ValidationError:
            raise Fallback from None
        return out
    return validated


def _none(field: fields.Field):
    if field.allow_none:
        return None
    raise Fallback


def _serializer(field: fields.Field, name: str) -> Callable[[object, dict], object]:
    """A function ``(value, data) -> dumped`` for a present value, as ``field._serialize`` answers it."""
    kind = type(field)
    own = field._serialize
    if kind is fields.String:
        return lambda value, data: value if type(value) is str else own(value, name, data)
    if kind is fields.Integer and not field.as_string:
        return lambda value, data: value if type(value) is int else own(value, name, data)
    if kind is fields.Float and not field.as_string:
        return lambda value, data: value if type(value) is float else own(value, name, data)
    if kind is fields.Nested and isinstance(field.nested, type) and not field.many:
        codec = compile_schema(field.schema)
        if codec is not None:
            dump = codec[1]
            return lambda value, data: None if value is None else dump(value)
    if kind is fields.List and type(field.inner) is fields.Nested and isinstance(field.inner.nested, type) \
            and not field.inner.many:
        codec = compile_schema(field.inner.schema)
        if codec is not None:
            dump = codec[1]
            return lambda value, data: None if value is None else [
                None if each is None else dump(each) for each in value]
    return lambda value, data: own(value, name, data)


_COMPILED: dict[int, tuple | None] = {}


def compile_schema(schema: Schema) -> tuple[Callable[[dict], object], Callable[[object], dict]] | None:
    """``(load, dump)`` for a schema instance (see the module's docstring), or None when it has a field
    kind or hook this module does not compile."""
    key = id(schema)
    if key in _COMPILED:
        return _COMPILED[key]
    _COMPILED[key] = None  # a schema nesting itself stays on marshmallow's path
    hooks = schema._hooks
    if any(hooks[tag] for tag in (PRE_LOAD, VALIDATES, VALIDATES_SCHEMA, POST_DUMP)) or schema.many \
            or schema.only or schema.exclude or schema.partial:
        return None
    loading = []
    for name, field in schema.load_fields.items():
        if field.attribute not in (None, name):
            return None
        convert = _convert(field, name)
        if convert is None:
            return None
        loading.append((field.data_key or name, name, field.required, field.allow_none, field.load_default,
                        convert))
    dumping = [(name, field.data_key or name, field.dump_default, _serializer(field, name))
               for name, field in schema.dump_fields.items() if field.attribute in (None, name)]
    if len(dumping) != len(schema.dump_fields):
        return None
    post_load = bool(hooks[POST_LOAD])
    pre_dump = bool(hooks[PRE_DUMP])

    def load(raw: dict):
        data = {}
        for key, name, required, allow_none, default, convert in loading:
            value = raw.get(key, missing)
            if value is missing:
                if required:
                    raise Fallback
                if default is missing:
                    continue
                data[name] = default() if callable(default) else default
            elif value is None:
                if not allow_none:
                    raise Fallback
                data[name] = None
            else:
                data[name] = convert(value, raw)
        if post_load:
            return schema._invoke_load_processors(POST_LOAD, data, many=False, original_data=raw, partial=None,
                                                  unknown=None)
        return data

    def dump(obj) -> dict:
        data = schema._invoke_dump_processors(PRE_DUMP, obj, many=False, original_data=obj) if pre_dump else obj
        if type(data) is not dict:
            return schema.dump(obj)
        out = {}
        for name, key, default, serialize in dumping:
            value = data.get(name, missing)
            if value is missing:
                if default is missing:
                    continue
                value = default() if callable(default) else default
                if value is missing:
                    continue
            out[key] = serialize(value, data)
        return out

    _COMPILED[key] = codec = (load, dump)
    return codec
