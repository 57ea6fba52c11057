"""shared/web.py ``JSONAnswers``: every JSON answer written with orjson is the document Flask's own
encoder writes (byte for byte but a float's exponent), and what orjson refuses still goes through Flask's."""
from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import uuid
from datetime import UTC, date, datetime

import orjson
import pytest
from flask import Flask

from shared.web import JSONAnswers


class Colour(enum.StrEnum):
    RED = "red"


class Rank(enum.IntEnum):
    ONE = 1


@dataclasses.dataclass
class Pair:
    left: int
    right: str


VALUES = [
    {"b": 1, "a": {"d": [1.5, 102.264, -27.894, 0.0, 12345678.9], "c": None}},
    {"text": "中文 ü \u2028 \"quoted\" \\ \n", "empty": ""},
    {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "day": date(2026, 1, 2)},
    {"amount": decimal.Decimal("1.10"), "id": uuid.UUID(int=5)},
    {"status": Colour.RED, "level": Rank.ONE, "flags": [True, False]},
    Pair(1, "x"),
    [Pair(2, "y"), {"nested": Pair(3, "z")}],
    {"big": 2 ** 70},  # over 64 bits: orjson refuses, Flask's encoder writes it
    {1: "a", 2: "b"},  # keys that are not text: Flask's encoder writes them as text
]


def answer(app: Flask, value) -> bytes:
    with app.app_context():
        return app.json.response(value).get_data()


@pytest.fixture
def apps():
    ours, flasks = Flask("ours"), Flask("flask")
    ours.json = JSONAnswers(ours)
    flasks.json.ensure_ascii = False
    return ours, flasks


@pytest.mark.parametrize("value", VALUES)
def test_an_answer_is_the_document_flask_writes(apps, value):
    ours, flasks = apps
    assert answer(ours, value) == answer(flasks, value)


def test_a_float_is_the_same_number_whatever_its_exponent_looks_like(apps):
    ours, flasks = apps
    value = {"tiny": 1e-07, "huge": 1e+22}
    assert json.loads(answer(ours, value)) == json.loads(answer(flasks, value)) == value


def test_what_orjson_refuses_goes_through_flasks_encoder(apps):
    ours, _ = apps
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps({"big": 2 ** 70})
    assert answer(ours, {"big": 2 ** 70}) == b'{"big":1180591620717411303424}\n'
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate cannot be sent, as before
        answer(ours, {"s": "\ud800"})


def test_debug_mode_answers_stay_indented():
    app = Flask("debug")
    app.json = JSONAnswers(app)
    app.debug = True
    assert answer(app, {"a": 1}) == b'{\n  "a": 1\n}\n'
