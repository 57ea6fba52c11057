"""Hostile numbers: numbers given as text. A JSON body's numbers must be JSON numbers (``"lon": " 1_02.2 "``
was stored as 102.2) and its booleans JSON booleans; a query string is text by nature, so its numbers are
parsed, but strictly. Each refusal names the field; nothing is stored; on SQLite and PostgreSQL."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.hostile import assert_problem, target_fixture

target = target_fixture()


def report(lon=102.264, lat=27.894) -> dict:
    return {"category": "street_light", "description": "lamp out", "location": {"lon": lon, "lat": lat}}


BODY_NUMBERS = [
    ("lon as text with spaces and an underscore", report(lon=" 1_02.2 "), "location.lon"),
    ("lon as plain decimal text", report(lon="102.2"), "location.lon"),
    ("lat as text", report(lat="27.8"), "location.lat"),
    ("lon as text in exponent form", report(lon="1.022e2"), "location.lon"),
    ("lon as NaN text", report(lon="NaN"), "location.lon"),
    ("lon as Infinity text", report(lon="Infinity"), "location.lon"),
    ("lon as a boolean", report(lon=True), "location.lon"),
    ("lat as null", report(lat=None), "location.lat"),
    ("lon as an array", report(lon=[102.2]), "location.lon"),
    ("lon as an object", report(lon={"value": 102.2}), "location.lon"),
    ("lon out of range", report(lon=180.0001), "location.lon"),
    ("lat out of range", report(lat=-90.5), "location.lat"),
]


@pytest.mark.parametrize("what, body, field_name", BODY_NUMBERS, ids=[b[0] for b in BODY_NUMBERS])
def test_a_report_location_must_be_json_numbers_in_range(target, what, body, field_name):
    before = target.counts()

    response = requests.post(target.url("intake", "/intake/v1/reports"), json=body, timeout=10,
                             headers={"Idempotency-Key": uuid.uuid4().hex, **target.auth()})

    assert_problem(response, 422, field_name)
    assert target.counts() == before


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_json_numbers_are_refused(target, literal):
    body = b'{"category": "street_light", "description": "x", "location": {"lon": ' + literal + b', "lat": 1}}'

    response = requests.post(target.url("intake", "/intake/v1/reports"), data=body, timeout=10,
                             headers={"Content-Type": "application/json", **target.auth()})

    assert_problem(response, 422, "location.lon")


def test_integral_json_numbers_are_numbers(target):
    response = requests.post(target.url("intake", "/intake/v1/reports"), json=report(lon=102, lat=27), timeout=10,
                             headers={"Idempotency-Key": uuid.uuid4().hex, **target.auth()})

    assert response.status_code == 201, response.text
    assert response.json()["location"] == {"lon": 102.0, "lat": 27.0}


@pytest.mark.parametrize("name, value", [("activate", "true"), ("activate", 1), ("repair", "false"),
                                         ("repair", 0), ("activate", None)])
def test_an_area_import_takes_json_booleans_only(target, name, value):
    before = target.counts()

    response = requests.post(target.url("dispatch", "/dispatch/v1/areas"), timeout=10, headers=target.auth(),
                             json={"levels": {"hq": {}, "subcenter": {}, "station": {}, "grid": {}}, name: value})

    assert_problem(response, 422, name)
    assert target.counts() == before


QUERY_NUMBERS = [
    ("/dispatch/v1/locate", {"lon": " 1_02.2 ", "lat": "27.8"}, "lon"),
    ("/dispatch/v1/locate", {"lon": "1_02.2", "lat": "27.8"}, "lon"),
    ("/dispatch/v1/locate", {"lon": "102.2", "lat": " 27.8"}, "lat"),
    ("/dispatch/v1/locate", {"lon": "+102.2", "lat": "27.8"}, "lon"),
    ("/dispatch/v1/locate", {"lon": "0x66", "lat": "27.8"}, "lon"),
    ("/dispatch/v1/locate", {"lon": "nan", "lat": "27.8"}, "lon"),
    ("/dispatch/v1/locate", {"lon": "inf", "lat": "27.8"}, "lon"),
    ("/dispatch/v1/locate", {"lon": "１０２", "lat": "27.8"}, "lon"),  # full-width digits: float() takes them
    ("/dispatch/v1/locate", {"lon": "", "lat": "27.8"}, "lon"),
    ("/dispatch/v1/areas", {"level": "grid", "version": "1_0"}, "version"),
    ("/dispatch/v1/areas", {"level": "grid", "version": " 1"}, "version"),
    ("/dispatch/v1/areas", {"level": "grid", "version": "1.0"}, "version"),
    ("/escalation/v1/cases", {"page": "1_000"}, "page"),
    ("/escalation/v1/cases", {"page_size": " 5"}, "page_size"),
    ("/escalation/v1/cases", {"level": "+2"}, "level"),
    ("/escalation/v1/cases", {"page": "9" * 40}, "page"),
]


@pytest.mark.parametrize("path, params, field_name", QUERY_NUMBERS,
                         ids=[f"{p} {sorted(q.items())}" for p, q, _ in QUERY_NUMBERS])
def test_query_numbers_are_parsed_strictly(target, path, params, field_name):
    service = path.split("/")[1]

    response = requests.get(target.url(service, path), params=params, headers=target.auth(), timeout=10)

    assert_problem(response, 422, field_name)


@pytest.mark.parametrize("lon", ["102.264", "-0.5", ".5", "1e-3", "102"])
def test_plain_decimal_query_numbers_are_accepted(target, lon):
    response = requests.get(target.url("dispatch", "/dispatch/v1/locate"), params={"lon": lon, "lat": "27.894"},
                            headers=target.auth(), timeout=10)

    assert response.status_code in (200, 404), response.text  # located, or outside the city: read either way
    if response.status_code == 404:
        assert "outside the city" in response.json()["detail"]
