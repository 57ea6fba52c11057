"""Issue 7, kind 3: query strings and path ids. An unknown query parameter is refused naming it, on every
GET of every service (``GET /escalation/v1/cases?owner=NOPE`` used to return every case), including the
operations that take no parameters at all; query text that no database could hold is refused naming the
parameter; a path id that cannot be an id answers 404 without reaching the database. On SQLite and
PostgreSQL."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.hostile import assert_problem, target_fixture

target = target_fixture()
SERVICES = ("intake", "dispatch", "escalation")


def get_operations(target) -> list[tuple[str, str]]:
    """Every GET operation of every service's OpenAPI, as (service, path with ids filled in)."""
    operations = []
    for service in SERVICES:
        spec = requests.get(target.url(service, f"/{service}/openapi.json"), timeout=10).json()
        for path, item in spec["paths"].items():
            if "get" in item:
                filled = path.replace("{", "").replace("}", "")
                for name in ("report_id", "case_id"):
                    filled = filled.replace(name, str(uuid.uuid4()))
                operations.append((service, filled))
    return operations


def test_every_get_operation_refuses_an_unknown_query_parameter_by_name(target):
    operations = get_operations(target)
    assert len(operations) >= 6  # reports/{id}, categories, locate, areas, cases, cases/{id}

    for service, path in operations:
        response = requests.get(target.url(service, path), params={"zz_unknown": "1"}, headers=target.auth(),
                                timeout=10)

        assert_problem(response, 422, "zz_unknown")


@pytest.mark.parametrize("path, params, unknown", [
    ("/escalation/v1/cases", {"owner": "NOPE"}, "owner"),
    ("/escalation/v1/cases", {"status": "open", "Status": "open"}, "Status"),
    ("/escalation/v1/cases", {"page": "1", "limit": "5"}, "limit"),
    ("/dispatch/v1/locate", {"lon": "102.26", "lat": "27.89", "srid": "4326"}, "srid"),
    ("/dispatch/v1/areas", {"levl": "grid"}, "levl"),
    ("/intake/v1/categories", {"lang": "zh"}, "lang"),
])
def test_a_misspelt_or_unknown_filter_is_refused_instead_of_ignored(target, path, params, unknown):
    service = path.split("/")[1]

    response = requests.get(target.url(service, path), params=params, headers=target.auth(), timeout=10)

    problem = assert_problem(response, 422, unknown)
    assert [e["field"] for e in problem["errors"]] == [unknown]


def test_the_public_categories_refuse_unknown_parameters_without_a_token(target):
    response = requests.get(target.url("intake", "/intake/v1/categories"), params={"x": "1"}, timeout=10)

    assert_problem(response, 422, "x")


def test_known_filters_are_still_accepted(target):
    response = requests.get(target.url("escalation", "/escalation/v1/cases"), headers=target.auth(), timeout=10,
                            params={"status": "open", "level": "1", "area": "G1", "category": "street_light",
                                    "overdue": "false", "page": "1", "page_size": "10"})

    assert response.status_code == 200, response.text
    assert response.json()["page_size"] == 10


@pytest.mark.parametrize("params, field_name", [
    ({"area": "G1\x00"}, "area"),
    ({"area": "A" * 65}, "area"),
    ({"area": "G1\x1b[2J"}, "area"),
    ({"category": "c" * 65}, "category"),
    ({"category": "street\nlight"}, "category"),
    ({"status": "open\x00"}, "status"),
    ({"level": "\x001"}, "level"),
])
def test_query_text_that_cannot_be_stored_or_matched_is_refused_by_name(target, params, field_name):
    response = requests.get(target.url("escalation", "/escalation/v1/cases"), params=params,
                            headers=target.auth(), timeout=10)

    assert_problem(response, 422, field_name)
    assert target.ready()


@pytest.mark.parametrize("service, path", [
    ("escalation", "/escalation/v1/cases/%00"),
    ("escalation", "/escalation/v1/cases/abc%00def"),
    ("escalation", "/escalation/v1/cases/" + "a" * 65),
    ("intake", "/intake/v1/reports/%00"),
    ("intake", "/intake/v1/reports/%1b%5b2J"),
    ("intake", "/intake/v1/reports/" + "9" * 65),
])
def test_a_path_id_that_cannot_be_an_id_is_not_found(target, service, path):
    response = requests.get(target.url(service, path), headers=target.auth(), timeout=10)

    assert_problem(response, 404)
    assert target.ready()


def test_a_transfer_of_a_case_whose_id_cannot_be_an_id_is_not_found_and_stores_nothing(target):
    before = target.counts()

    response = requests.post(target.url("dispatch", "/dispatch/v1/cases/%00/transfer"), headers=target.auth(),
                             json={"to": "G1", "reason": "wrong side"}, timeout=10)

    assert_problem(response, 404)
    assert target.counts() == before


@pytest.mark.parametrize("query", ["overdue=yes", "overdue=on", "triage=TRUE", "overdue=y"])
def test_a_query_boolean_is_true_or_false_or_1_or_0_only(target, query):
    response = requests.get(target.url("escalation", f"/escalation/v1/cases?{query}"), headers=target.auth(),
                            timeout=10)
    assert_problem(response, 422, query.split("=")[0])


def test_a_query_parameter_given_twice_is_refused_naming_it(target):
    response = requests.get(target.url("escalation", "/escalation/v1/cases?level=1&level=2"), headers=target.auth(),
                            timeout=10)
    assert_problem(response, 422, "level")


@pytest.mark.parametrize("probe", ["healthz", "readyz", "metrics"])
def test_the_probes_take_no_query_parameters(target, probe):
    for service in SERVICES:
        for path in (f"/{service}/{probe}", f"/{probe}"):  # embedded, the root is the whole system's probe
            response = requests.get(target.url(service, f"{path}?x=1"), timeout=10)
            assert_problem(response, 422, "x")
            assert requests.get(target.url(service, path), timeout=10).status_code == 200
