"""shared/fields.py: the character and length rules of storable text and the strict numbers, as the
schemas of all three services use them (their answers over HTTP are in tests/e2e/test_hostile_*.py)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from marshmallow import Schema, ValidationError

from shared.fields import (
    Day,
    Instant,
    JsonBoolean,
    JsonFloat,
    JsonInteger,
    QueryFloat,
    QueryInteger,
    Text,
    parse_instant,
    storable_problem,
    strict_decimal,
)
from shared.web import _depth_exceeds, body_limit, printable


class Sample(Schema):
    name = Text(10)
    note = Text(20, min_length=1, multiline=True)
    lon = JsonFloat(allow_nan=False)
    count = JsonInteger()
    flag = JsonBoolean()


class SampleQuery(Schema):
    lon = QueryFloat(allow_nan=False)
    page = QueryInteger()


@pytest.mark.parametrize("text, words", [
    ("lamp \ud83d", "lone UTF-16 surrogate (U+D83D) at position 5"),
    ("\udfff", "surrogate (U+DFFF) at position 0"),
    ("a\x00b", "a NUL character at position 1"),
    ("a\x7f", "the control character U+007F at position 1"),
    ("\x85", "the control character U+0085"),
    ("tab\there", "the control character U+0009 at position 3"),
])
def test_unstorable_text_is_named_with_its_character_and_position(text, words):
    assert words in storable_problem(text)


@pytest.mark.parametrize("text", ["", "plain", "路灯不亮 🌃", "a\u00a0b", "zero\u200bwidth", "بالعربية"])
def test_printable_text_of_every_script_is_storable(text):
    assert storable_problem(text) is None


def test_line_breaks_and_tabs_are_allowed_only_in_multiline_text():
    assert storable_problem("one\ntwo\r\n\tthree", multiline=True) is None
    assert storable_problem("one\ntwo") is not None


def test_text_longer_than_its_column_is_refused_at_one_past_the_limit():
    assert Sample().load({"name": "x" * 10}) == {"name": "x" * 10}
    with pytest.raises(ValidationError) as refused:
        Sample().load({"name": "x" * 11})
    assert "name" in refused.value.messages


@pytest.mark.parametrize("field, value", [("lon", " 1_02.2 "), ("lon", "102.2"), ("lon", True), ("lon", None),
                                          ("count", "2"), ("count", 2.5), ("count", False), ("flag", "true"),
                                          ("flag", 1), ("lon", float("nan"))])
def test_json_fields_take_json_values_of_their_type_only(field, value):
    with pytest.raises(ValidationError) as refused:
        Sample().load({field: value})
    assert field in refused.value.messages


def test_json_fields_take_their_json_values():
    assert Sample().load({"lon": 102, "count": 3, "flag": False}) == {"lon": 102.0, "count": 3, "flag": False}


@pytest.mark.parametrize("value", [" 1", "1_0", "+1", "0x10", "nan", "inf", "1e", "", "١٢", "１２", "1 "])
def test_query_numbers_are_plain_ascii_decimals(value):
    with pytest.raises(ValidationError):
        SampleQuery().load({"lon": value})
    with pytest.raises(ValidationError):
        SampleQuery().load({"page": value})


def test_plain_query_numbers_are_read():
    assert SampleQuery().load({"lon": "-102.5e0", "page": "12"}) == {"lon": -102.5, "page": 12}


def test_depth_counts_arrays_and_objects_without_recursion():
    value = current = []
    for _ in range(100_000):
        current.append([])
        current = current[0]
    assert _depth_exceeds(value, 64)
    assert not _depth_exceeds({"a": [[{"b": 1}]]}, 4)
    assert _depth_exceeds({"a": [[{"b": []}]]}, 4)


def test_echoed_input_is_escaped_and_cut():
    assert printable("x\ud800\x00y") == "x\\ud800\\u0000y"
    assert printable("z" * 500, 10) == "z" * 10 + "…"


def test_body_limits_are_per_route():
    assert body_limit("POST", "/dispatch/v1/areas") == 64 * 1024 * 1024
    assert body_limit("POST", "/intake/v1/reports/abc/photos") == 12 * 1024 * 1024
    assert body_limit("POST", "/intake/v1/reports") == 64 * 1024
    assert body_limit("POST", "/dispatch/v1/cases/abc/transfer") == 64 * 1024
    assert body_limit("PUT", "/dispatch/v1/areas") == 64 * 1024


class Times(Schema):
    at = Instant()
    day = Day()


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z",
                                  "2100-01-01T00:00:00Z", "2100-01-01T08:00:00+08:00"])
def test_an_instant_outside_1970_to_2100_is_refused_before_anything_converts_it(text):
    with pytest.raises(ValidationError) as refused:
        Times().load({"at": text})
    assert "between 1970-01-01 and 2100-01-01" in str(refused.value.messages["at"])
    with pytest.raises(ValueError, match="between 1970-01-01 and 2100-01-01"):
        parse_instant(text)


@pytest.mark.parametrize("text, words", [("2026-01-05T09:30:00", "needs an offset"), ("yesterday", "not an ISO 8601"),
                                         ("2026-13-01T00:00:00Z", "not an ISO 8601")])
def test_an_instant_without_an_offset_or_not_a_date_time_is_refused_with_the_reason(text, words):
    with pytest.raises(ValueError, match=words):
        parse_instant(text)


def test_an_instant_within_range_is_read_in_utc():
    loaded = Times().load({"at": "2026-01-05T09:30:00+08:00", "day": "2026-01-05"})
    assert loaded["at"] == datetime(2026, 1, 5, 1, 30, tzinfo=UTC) and loaded["at"].tzinfo is UTC
    assert parse_instant("1970-01-01T00:00:00Z") == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_instant("2100-01-01T07:59:59+08:01") < datetime(2100, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["0001-01-01", "9999-12-31", "1969-12-31", "2100-01-01"])
def test_a_day_outside_1970_to_2100_is_refused(text):
    with pytest.raises(ValidationError):
        Times().load({"day": text})


@pytest.mark.parametrize("text", [" 27.8 ", "1_02.2", "+1", "inf", "nan", "0x1f", "", "1e", "١٢"])
def test_a_strict_decimal_refuses_what_float_would_take(text):
    with pytest.raises(ValueError):
        strict_decimal(text)
    assert strict_decimal("-27.8") == -27.8 and strict_decimal("1e-3") == 0.001
