"""shared/fields.py: the character and length rules of storable text and the strict numbers, as the
schemas of all three services use them (their answers over HTTP are in tests/e2e/test_hostile_*.py)."""
from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError

from shared.fields import JsonBoolean, JsonFloat, JsonInteger, QueryFloat, QueryInteger, Text, storable_problem
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
