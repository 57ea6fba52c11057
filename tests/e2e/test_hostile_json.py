"""Hostile JSON: JSON that parses but cannot be stored — deep nesting, lone surrogates, NUL and other
control characters, text longer than its column, token claims that do not fit — answered with a 4xx
problem naming the field (401 naming the claim), nothing stored, the system ready after; on SQLite
(`gridcase up`) and on PostgreSQL (the production topology), whose limits differ."""
from __future__ import annotations

import json
import uuid

import pytest
import requests

from tests.support.hostile import assert_problem, target_fixture

target = target_fixture()
CASE = str(uuid.uuid4())
REPORTS, AREAS = "/intake/v1/reports", "/dispatch/v1/areas"
TRANSFER = f"/escalation/v1/cases/{CASE}/actions"  # the transfer action: escalation decides every change of owner
SERVICE = {REPORTS: "intake", AREAS: "dispatch", TRANSFER: "escalation"}


def report(**overrides) -> dict:
    return {"category": "street_light", "description": "lamp out at gate 3",
            "location": {"lon": 102.264, "lat": 27.894}, **overrides}


def transfer(**overrides) -> dict:
    return {"action": "transfer", "to": "G1", "reason": "wrong side", **overrides}


def raw(document) -> bytes:
    """JSON text exactly as a client may send it: ``\\uXXXX`` escapes kept (lone surrogates included)."""
    return json.dumps(document, ensure_ascii=True).encode()


def post(target, path: str, body: bytes, headers: dict | None = None, role: str = "admin") -> requests.Response:
    return requests.post(target.url(SERVICE[path], path), data=body, timeout=60, headers={
        "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex, **target.auth(role),
        **(headers or {})})


def nested(depth: int, opening: str = "[", closing: str = "]", inner: str = "1") -> bytes:
    return (opening * depth + inner + closing * depth).encode()


# (input, path, body, status, field named in the problem or None)
REFUSED = [
    ("a lone high surrogate in a description", REPORTS, raw(report(description="lamp out \ud83d")), 422,
     "description"),
    ("a lone low surrogate in a description", REPORTS, raw(report(description="\ude00 lamp out")), 422, "description"),
    ("a lone surrogate in a category", REPORTS, raw(report(category="street_light\ud800")), 422, "category"),
    ("a NUL byte in a description", REPORTS, raw(report(description="lamp\u0000out")), 422, "description"),
    ("a NUL byte in a category", REPORTS, raw(report(category="\u0000")), 422, "category"),
    ("a bell character in a description", REPORTS, raw(report(description="lamp \u0007 out")), 422, "description"),
    ("an escape sequence in a description", REPORTS, raw(report(description="\u001b[31mred")), 422, "description"),
    ("a C1 control character in a description", REPORTS, raw(report(description="lamp\u0085out")), 422,
     "description"),
    ("a line feed in a category", REPORTS, raw(report(category="street\nlight")), 422, "category"),
    ("a description of 2,001 characters", REPORTS, raw(report(description="x" * 2001)), 422, "description"),
    ("a description of 2,001 Chinese characters", REPORTS, raw(report(description="灯" * 2001)), 422, "description"),
    ("a category of 65 characters", REPORTS, raw(report(category="c" * 65)), 422, "category"),
    ("an empty description", REPORTS, raw(report(description="")), 422, "description"),
    ("a surrogate in an unknown field's name", REPORTS, b'{"descr\\ud800": 1}', 422, "descr\\ud800"),
    ("a NUL in an unknown field's name", REPORTS, b'{"x\\u0000": 1}', 422, "x\\u0000"),
    ("a lone surrogate in a transfer reason", TRANSFER, raw(transfer(reason="wrong side \udbff")), 422, "reason"),
    ("a NUL byte in a transfer target", TRANSFER, raw(transfer(to="G1\u0000")), 422, "to"),
    ("a transfer target of 65 characters", TRANSFER, raw(transfer(to="G" * 65)), 422, "to"),
    ("a transfer reason of 501 characters", TRANSFER, raw(transfer(reason="r" * 501)), 422, "reason"),
    ("a NUL byte in an import's source", AREAS, raw({"levels": {}, "source": "qgis\u0000"}), 422, "source"),
    ("an import source of 201 characters", AREAS, raw({"levels": {}, "source": "s" * 201}), 422, "source"),
    ("30,000 nested arrays in a report", REPORTS, nested(30_000), 400, None),
    ("100,000 nested arrays in an area import", AREAS, nested(100_000), 400, None),
    ("100,000 nested objects in an area import", AREAS, nested(100_000, '{"a":', "}"), 400, None),
    ("65 nested objects under a known field", REPORTS,
     b'{"category": "street_light", "description": "x", "location": ' + nested(65, '{"a":', "}") + b"}", 400, None),
    ("an integer of 5,000 digits", REPORTS,
     b'{"category": "street_light", "description": "x", "location": {"lon": ' + b"1" * 5000 + b', "lat": 1}}',
     400, None),
    ("bytes that are not UTF-8", REPORTS, b'{"category": "\xff\xfe\xfd", "description": "x"}', 400, None),
    ("a UTF-16 surrogate encoded in UTF-8 bytes", REPORTS, b'{"category": "\xed\xa0\x80", "description": "x"}', 400,
     None),
    ("an unpaired surrogate in a UTF-16 body", REPORTS,
     b"\xff\xfe" + '{"category": "'.encode("utf-16-le") + b"\x00\xd8" + '", "description": "x"}'.encode("utf-16-le"),
     400, None),
    ("a UTF-16 surrogate in UTF-8 bytes in a transfer", TRANSFER,
     b'{"action": "transfer", "to": "G1", "reason": "\xed\xb0\x80"}', 400, None),
    ("a truncated document", REPORTS, raw(report())[:-7], 400, None),
]


@pytest.mark.parametrize("what, path, body, status, field_name", REFUSED, ids=[r[0] for r in REFUSED])
def test_json_that_cannot_be_stored_is_refused_naming_the_field_and_stores_nothing(
        target, what, path, body, status, field_name):
    before = target.counts()

    response = post(target, path, body)

    problem = assert_problem(response, status, field_name)
    assert problem.get("detail") or problem.get("errors")
    assert target.counts() == before
    assert target.ready()


def test_a_body_of_thousands_of_unknown_names_gets_a_bounded_answer(target):
    body = raw({f"field_{i}": i for i in range(3000)})

    response = post(target, REPORTS, body)

    problem = assert_problem(response, 422)
    assert len(problem["errors"]) == 50 and problem["errors_omitted"] == 3002 - 50  # 3000 unknown, 2 missing
    assert len(response.content) < 20_000


def test_the_refusal_of_a_lone_surrogate_says_what_is_wrong_and_where(target):
    response = post(target, REPORTS, raw(report(description="lamp out \ud83d")))

    [error] = assert_problem(response, 422, "description")["errors"]
    assert "surrogate" in error["detail"] and "position 9" in error["detail"]


def test_the_same_report_without_the_broken_character_is_stored_once(target):
    before = target.counts()

    response = post(target, REPORTS, raw(report(description="lamp out 🌃 路灯\nline two\ttabbed")))

    assert response.status_code == 201, response.text
    assert response.json()["description"] == "lamp out 🌃 路灯\nline two\ttabbed"
    assert target.counts()["intake.reports"] == before["intake.reports"] + 1


def test_a_body_in_utf16_with_a_byte_order_mark_is_read(target):
    body = json.dumps(report(category="no_such_category")).encode("utf-16")

    response = post(target, REPORTS, body)

    assert_problem(response, 422, "category")  # read, then refused for its category: not a 400


def test_a_body_in_utf8_with_a_byte_order_mark_is_read(target):
    response = post(target, REPORTS, b"\xef\xbb\xbf" + raw(report(category="no_such_category")))

    assert_problem(response, 422, "category")


# --- token claims: what the services store of a token (the subject as reporter/actor, the area id) ----


TOKENS = [
    ("a subject of 129 characters", {"sub": "u" * 129}, "sub"),
    ("a subject with a NUL byte", {"sub": "wang\u0000"}, "sub"),
    ("a subject with a lone surrogate", {"sub": "wang\ud83d"}, "sub"),
    ("a subject with a line feed", {"sub": "wang\nadmin"}, "sub"),
    ("an empty subject", {"sub": ""}, "sub"),
    ("an area id of 65 characters", {"area": "A" * 65}, "area"),
    ("an area id with a NUL byte", {"area": "G1\u0000"}, "area"),
    ("an area id that is a number", {"area": 42}, "area"),
]


@pytest.mark.parametrize("what, claims, claim", TOKENS, ids=[t[0] for t in TOKENS])
def test_a_token_whose_claims_cannot_be_stored_is_refused_with_the_reason(target, what, claims, claim):
    before = target.counts()
    token = target.token("station" if "area" in claims else "admin", **claims)

    response = requests.post(target.url("intake", REPORTS), json=report(), timeout=10,
                             headers={"Authorization": f"Bearer {token}"})

    problem = assert_problem(response, 401)
    assert f"the {claim} claim" in problem["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert target.counts() == before


def test_a_subject_of_exactly_128_characters_is_accepted(target):
    before = target.counts()

    response = post(target, REPORTS, raw(report()), headers=target.auth("admin", sub="u" * 128))

    assert response.status_code == 201, response.text
    assert response.json()["reporter"] == "u" * 128
    assert target.counts()["intake.reports"] == before["intake.reports"] + 1


def test_a_json_object_naming_a_field_twice_is_refused_and_stores_nothing(target):
    before = target.counts()
    body = ('{"category": "street_light", "description": "x", "description": "y", '
            '"location": {"lon": 102.2, "lat": 27.9}}')
    response = requests.post(target.url("intake", "/intake/v1/reports"), data=body, timeout=10,
                             headers={**target.auth("command"), "Content-Type": "application/json"})
    problem = assert_problem(response, 400)
    assert "'description' twice" in problem["detail"]
    assert target.counts() == before
