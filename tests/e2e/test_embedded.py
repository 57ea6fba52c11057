"""The whole system as `gridcase up` runs it: one process, SQLite, in-memory bus, real HTTP."""
from __future__ import annotations

import sqlite3
import time
import uuid

import pytest
import requests

from tests.support.system import a_point_in_grid, auth, embedded_system, report_at_level, token, wait_for_case


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    data = tmp_path_factory.mktemp("embedded")
    with embedded_system(data) as base:
        yield base, data


def report(lon, lat, **overrides):
    return {"category": "street_light", "description": "路灯不亮 lamp out at gate 3",
            "location": {"lon": lon, "lat": lat}, **overrides}


def test_a_report_reaches_level_one_of_its_grid_within_five_seconds(embedded):
    base, data = embedded
    admin = token(data, "admin")
    grid, lon, lat = a_point_in_grid(base, admin)
    worker = token(data, "grid_worker", area=grid, user="wang")
    response = requests.post(f"{base}/intake/v1/reports", json=report(lon, lat),
                             headers=auth(worker, **{"Idempotency-Key": str(uuid.uuid4())}), timeout=5)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "reported" and created["number"]
    case, _seconds = wait_for_case(base, created["id"], worker, timeout=5)
    assert case["status"] == "open" and case["level"] == 1
    assert case["owner"]["area_id"] == grid and case["owner"]["level"] == 1
    assert case["deadline"].endswith("Z") and case["timeline"][0]["type"] == "opened"
    mine = report_at_level(base, created["id"], worker, 1)
    assert mine["id"] == created["id"] and mine["status"] == "open"
    assert mine["level"] == 1 and mine["owner_area_id"] == grid


def test_a_retried_report_with_its_key_is_the_same_case_and_another_body_is_refused(embedded):
    base, data = embedded
    admin = token(data, "admin")
    grid, lon, lat = a_point_in_grid(base, admin, index=1)
    worker = token(data, "grid_worker", area=grid, user="li")
    headers = auth(worker, **{"Idempotency-Key": "retry-" + uuid.uuid4().hex})
    first = requests.post(f"{base}/intake/v1/reports", json=report(lon, lat), headers=headers, timeout=5).json()
    again = requests.post(f"{base}/intake/v1/reports", json=report(lon, lat), headers=headers, timeout=5)
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    other = requests.post(f"{base}/intake/v1/reports", json=report(lon, lat, description="another thing"),
                          headers=headers, timeout=5)
    assert other.status_code == 422
    assert other.headers["Content-Type"].startswith("application/problem+json")
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    wait_for_case(base, first["id"], worker)


def test_a_case_outside_a_workers_grid_answers_404_as_if_it_did_not_exist(embedded):
    base, data = embedded
    admin = token(data, "admin")
    grid, lon, lat = a_point_in_grid(base, admin, index=2)
    other_grid, _, _ = a_point_in_grid(base, admin, index=3)
    worker = token(data, "grid_worker", area=grid, user="zhao")
    created = requests.post(f"{base}/intake/v1/reports", json=report(lon, lat), headers=auth(worker), timeout=5)
    case_id = created.json()["id"]
    wait_for_case(base, case_id, worker)
    stranger = token(data, "grid_worker", area=other_grid, user="qian")
    assert requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(stranger), timeout=5).status_code == 404
    assert requests.get(f"{base}/escalation/v1/cases/{uuid.uuid4()}", headers=auth(admin), timeout=5).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"category": "street_light", "description": "x", "location": {"lon": 200, "lat": 1}}, "location.lon"),
    ({"category": "street_light", "description": "x", "location": {"lon": "NaN", "lat": 1}}, "location.lon"),
    ({"category": "no_such_thing", "description": "x", "location": {"lon": 1, "lat": 1}}, "category"),
    ({"category": "street_light", "location": {"lon": 1, "lat": 1}}, "description"),
    ({"category": "street_light", "description": "x", "location": {"lon": 1, "lat": 1}, "status": "closed"},
     "status"),
])
def test_a_bad_report_gets_a_problem_naming_the_field_and_changes_nothing(embedded, body, field):
    base, data = embedded
    worker = token(data, "grid_worker", area=a_point_in_grid(base, token(data, "admin"))[0], user="sun")
    before = _count(data / "intake.db", "reports")
    response = requests.post(f"{base}/intake/v1/reports", json=body, headers=auth(worker), timeout=5)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]
    assert _count(data / "intake.db", "reports") == before


def test_requests_without_a_valid_token_get_401_and_malformed_json_400(embedded):
    base, data = embedded
    assert requests.get(f"{base}/escalation/v1/cases", timeout=5).status_code == 401
    bad = requests.get(f"{base}/escalation/v1/cases", headers=auth("not-a-token"), timeout=5)
    assert bad.status_code == 401 and bad.json()["status"] == 401
    worker = token(data, "grid_worker", area=a_point_in_grid(base, token(data, "admin"))[0], user="sun")
    broken = requests.post(f"{base}/intake/v1/reports", data="{oops", timeout=5,
                           headers=auth(worker, **{"Content-Type": "application/json"}))
    assert broken.status_code == 400 and broken.headers["Content-Type"].startswith("application/problem+json")
    text = requests.post(f"{base}/intake/v1/reports", data="hello", timeout=5,
                         headers=auth(worker, **{"Content-Type": "text/plain"}))
    assert text.status_code == 415


def test_categories_list_the_policy_in_chinese_and_english(embedded):
    base, data = embedded
    categories = requests.get(f"{base}/intake/v1/categories", timeout=5).json()
    assert any(c["code"] == "street_light" and c["zh"] == "路灯损坏" and c["en"] == "Broken street light"
               for c in categories)


def test_every_accepted_report_has_exactly_one_case_and_every_outbox_is_empty(embedded):
    base, data = embedded
    admin = token(data, "admin")
    requests.get(f"{base}/readyz", timeout=5).raise_for_status()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reports = _count(data / "intake.db", "reports")
        if reports == _count(data / "escalation.db", "cases") == _count(data / "dispatch.db", "dispatches"):
            break
        time.sleep(0.1)
    assert reports > 0
    assert _count(data / "escalation.db", "cases") == reports
    assert _count(data / "dispatch.db", "dispatches") == reports
    for service in ("intake", "dispatch", "escalation"):
        assert _count(data / f"{service}.db", "outbox", "sent_at IS NULL") == 0
        assert _count(data / f"{service}.db", "dead_letters") == 0
    listing = requests.get(f"{base}/escalation/v1/cases", headers=auth(admin), timeout=5).json()
    assert listing["total"] == reports


def _count(path, table, where="1=1") -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


@pytest.mark.parametrize("service", ["intake", "dispatch", "escalation"])
def test_each_service_publishes_its_openapi_and_docs_without_a_cdn(embedded, service):
    base, _ = embedded
    spec = requests.get(f"{base}/{service}/openapi.json", timeout=5)
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    assert any(path.startswith(f"/{service}/v1") for path in spec.json()["paths"])
    docs = requests.get(f"{base}/{service}/docs", timeout=5)
    assert docs.status_code == 200 and "http" not in docs.text.split("swagger-ui.css")[0].rsplit('"', 1)[-1]
    assert requests.get(f"{base}/{service}/static/swagger-ui/swagger-ui-bundle.js", timeout=5).status_code == 200


def test_a_role_that_may_not_report_gets_403_before_its_body_is_even_read(embedded):
    base, data = embedded
    supervisor = token(data, "supervisor")
    response = requests.post(f"{base}/intake/v1/reports", json={"nonsense": True}, headers=auth(supervisor),
                             timeout=5)
    assert response.status_code == 403 and response.headers["Content-Type"].startswith("application/problem+json")
    anonymous = requests.post(f"{base}/intake/v1/reports", json={"nonsense": True}, timeout=5)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
