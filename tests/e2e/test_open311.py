"""Open311 GeoReport v2 on the embedded system, driven by a real client library (``georeport`` from PyPI:
services, service definitions, requests) and by the spec's form-encoded POST."""
from __future__ import annotations

import subprocess
from xml.etree import ElementTree

import pytest
import requests
from georeport import GeoReport

from harness.processes import GRIDCASE, wait_for
from tests.support.system import ROOT, a_point_in_grid, auth, embedded_system, report_at_level, token


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    data = tmp_path_factory.mktemp("open311")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin, index=5)
        key = subprocess.run(GRIDCASE + ["apikey", "create", "--name", "city-app", "--data-dir", str(data)],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        yield base, admin, key, grid, (lon, lat), data


def test_apikey_create_prints_a_new_key_alone_and_refuses_a_taken_name(city):
    base, admin, key, grid, point, data = city
    assert key.endswith("\n") and len(key.strip()) >= 40 and "\n" not in key.strip()
    again = subprocess.run(GRIDCASE + ["apikey", "create", "--name", "city-app", "--data-dir", str(data)],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr and again.stdout == ""


def test_a_client_library_lists_services_and_reads_a_definition(city):
    base, *_ = city
    client = GeoReport(f"{base}/open311/v2")
    services = client.get_service_list()
    codes = {s["service_code"] for s in services}
    assert "street_light" in codes and all(s["metadata"] is False for s in services)
    assert client.get_service_definition("street_light")["service_code"] == "street_light"
    xml = GeoReport(f"{base}/open311/v2", output_format="xml").get_service_list()
    assert "street_light" in {s["service_code"] for s in xml}


def test_a_form_encoded_request_with_a_key_becomes_a_case_the_client_library_follows(city):
    base, admin, key, grid, (lon, lat), data = city
    response = requests.post(f"{base}/open311/v2/requests.json", timeout=10, data={
        "api_key": key.strip(), "service_code": "street_light", "lat": lat, "long": lon,
        "description": "lamp out by the bridge", "email": "someone@example.org", "first_name": "Private"})
    assert response.status_code == 201, response.text
    [created] = response.json()
    request_id = created["service_request_id"]
    report = report_at_level(base, request_id, admin, 1, timeout=20)
    assert report["reporter"] == "open311:city-app" and report["owner_area_id"] == grid

    client = GeoReport(f"{base}/open311/v2")
    one = wait_for(lambda: (r := client.get_service_request(request_id))["expected_datetime"] and r, 20, 0.1,
                   "the deadline of the case's level (case.opened)")
    assert one["status"] == "open" and one["service_code"] == "street_light"
    assert "level 1" in one["status_notes"] and one["agency_responsible"]
    assert not {"reporter", "email", "first_name", "client_time"} & set(one)
    assert "Private" not in requests.get(f"{base}/open311/v2/requests/{request_id}.json", timeout=10).text
    listed = client.get_service_requests(service_code="street_light", status="open")
    assert request_id in {r["service_request_id"] for r in listed}
    assert request_id not in {r["service_request_id"] for r in client.get_service_requests(status="closed")}
    assert [r["service_request_id"] for r in client.get_service_requests(service_request_id=request_id)] == \
        [request_id]
    xml = requests.get(f"{base}/open311/v2/requests/{request_id}.xml", timeout=10)
    assert xml.headers["Content-Type"].startswith("text/xml")
    assert ElementTree.fromstring(xml.content).find("request/service_request_id").text == request_id


@pytest.mark.parametrize("change, status", [
    ({"api_key": ""}, 403), ({"api_key": "guessed-key"}, 403), ({"service_code": "alien"}, 400),
    ({"lat": "north"}, 400), ({"long": "nan"}, 400), ({"lat": "91"}, 400), ({"description": "a\u0000b"}, 400)])
def test_a_bad_request_gets_the_specs_error_list_and_stores_nothing(city, change, status):
    base, admin, key, grid, (lon, lat), data = city
    form = {"api_key": key.strip(), "service_code": "street_light", "lat": lat, "long": lon, "description": "x"}
    before = len(requests.get(f"{base}/open311/v2/requests.json", timeout=10).json())
    response = requests.post(f"{base}/open311/v2/requests.json", data={**form, **change}, timeout=10)
    assert response.status_code == status
    [error] = response.json()
    assert error["code"] == status and error["description"]
    assert len(requests.get(f"{base}/open311/v2/requests.json", timeout=10).json()) == before


def test_listing_refuses_a_span_over_90_days_and_an_unknown_status(city):
    base, *_ = city
    wide = requests.get(f"{base}/open311/v2/requests.json", params={
        "start_date": "2020-01-01T00:00:00Z", "end_date": "2020-06-01T00:00:00Z"}, timeout=10)
    assert wide.status_code == 400 and wide.json()[0]["code"] == 400
    assert requests.get(f"{base}/open311/v2/requests.json", params={"status": "lost"}, timeout=10).status_code == 400
    assert requests.get(f"{base}/open311/v2/requests/nope.json", timeout=10).status_code == 404


def test_staff_tokens_are_not_needed_and_do_not_widen_what_is_public(city):
    base, admin, *_ = city
    public = requests.get(f"{base}/open311/v2/requests.json", timeout=10).json()
    with_token = requests.get(f"{base}/open311/v2/requests.json", headers=auth(admin), timeout=10).json()
    assert public == with_token and all("reporter" not in r for r in public)
