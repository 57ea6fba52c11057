"""Open311 GeoReport v2 on the embedded system, driven by a real client library (``georeport`` from PyPI:
services, service definitions, requests) and by the spec's form-encoded POST."""
from __future__ import annotations

import subprocess
import uuid
from xml.etree import ElementTree

import pytest
import requests
from georeport import GeoReport

from harness.processes import GRIDCASE, wait_for
from shared.gcj02 import wgs84_to_gcj02
from tests.support.images import jpeg
from tests.support.system import ROOT, a_point_in_grid, auth, embedded_system, report_at_level, token


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    data = tmp_path_factory.mktemp("open311")
    with embedded_system(data, env={"GRIDCASE_DUPLICATE_RADIUS_M": "50"}) as base:
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
    ({"lat": "north"}, 400), ({"long": "nan"}, 400), ({"lat": "91"}, 400), ({"description": "a\u0000b"}, 400),
    ({"lat": " 27.8 "}, 400), ({"long": "1_02.2"}, 400), ({"lat": "+27.8"}, 400), ({"long": "0x66"}, 400),
    ({"long": "1e400"}, 400), ({"lat": "２７.８"}, 400), ({"crs": "bd09"}, 400),
    ({"service_code": "neighbour_dispute"}, 400), ({"service_code": "other"}, 400)])
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


def file_request(city, code: str, lon: float, lat: float, description: str, **extra) -> str:
    base, admin, key, *_ = city
    response = requests.post(f"{base}/open311/v2/requests.json", timeout=10, data={
        "api_key": key.strip(), "service_code": code, "lat": lat, "long": lon, "description": description, **extra})
    assert response.status_code == 201, response.text
    return response.json()[0]["service_request_id"]


def listed(base, **params) -> dict[str, dict]:
    answer = requests.get(f"{base}/open311/v2/requests.json", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return {r["service_request_id"]: r for r in answer.json()}


def test_only_the_categories_the_city_marks_public_are_services_grouped_by_their_class(city):
    base, *_ = city
    services = {s["service_code"]: s for s in requests.get(f"{base}/open311/v2/services.json", timeout=10).json()}
    assert set(services) == {"street_light", "manhole_cover", "road_damage", "illegal_dumping", "fire_lane_blocked"}
    assert services["street_light"]["group"] == "Public utilities"
    assert services["road_damage"]["group"] == "Roads and traffic"
    assert services["manhole_cover"]["group"] == "Public utilities", "the class, not the severity (urgent)"
    for code in ("neighbour_dispute", "safety_hazard", "other"):
        answer = requests.get(f"{base}/open311/v2/services/{code}.json", timeout=10)
        assert answer.status_code == 404 and answer.json()[0]["code"] == 404


def test_a_position_sent_in_gcj02_is_converted_and_lands_in_its_grid(city):
    base, admin, key, *_ = city
    grid, lon, lat = a_point_in_grid(base, admin, index=11)
    offset_lon, offset_lat = wgs84_to_gcj02(lon, lat)
    assert abs(offset_lon - lon) + abs(offset_lat - lat) > 0.002  # hundreds of metres apart
    request_id = file_request(city, "manhole_cover", offset_lon, offset_lat, "gcj02 from a map app", crs="gcj02")
    report = report_at_level(base, request_id, admin, 1, timeout=20)
    assert abs(report["location"]["lon"] - lon) < 1e-5 and abs(report["location"]["lat"] - lat) < 1e-5
    assert report["owner_area_id"] == grid


def test_a_grid_workers_report_is_never_published_whatever_its_category(city):
    base, admin, key, *_, data = city
    grid, lon, lat = a_point_in_grid(base, admin, index=15)
    worker = token(data, "grid_worker", area=grid, user="internal-wang")
    response = requests.post(f"{base}/intake/v1/reports", headers=auth(worker), timeout=10, json={
        "category": "street_light", "description": "internal: the substation key is under the mat",
        "location": {"lon": lon, "lat": lat}})
    assert response.status_code == 201, response.text
    internal = response.json()["id"]
    assert response.json()["duplicate_of"] is None
    assert internal not in listed(base)
    assert requests.get(f"{base}/open311/v2/requests/{internal}.json", timeout=10).status_code == 404
    assert internal not in listed(base, service_request_id=internal)
    assert "substation" not in requests.get(f"{base}/open311/v2/requests.xml", timeout=10).text


def test_a_token_may_not_take_the_subject_of_an_open311_client(city):
    base, admin, key, grid, point, data = city
    made = subprocess.run(GRIDCASE + ["token", "--role", "command", "--user", "open311:city-app", "--data-dir",
                                      str(data)], cwd=ROOT, capture_output=True, text=True)
    assert made.returncode != 0 and "open311:" in made.stderr


def test_a_duplicate_is_not_listed_but_found_by_its_id(city):
    base, admin, key, *_ = city
    grid, lon, lat = a_point_in_grid(base, admin, index=7)
    first = file_request(city, "road_damage", lon, lat, "pothole by the school gate")
    report_at_level(base, first, admin, 1, timeout=20)
    again = file_request(city, "road_damage", lon + 1e-5, lat, "the same pothole")
    linked = requests.get(f"{base}/intake/v1/reports/{again}", headers=auth(admin), timeout=10).json()
    assert linked["duplicate_of"]["id"] == first
    shown = listed(base, service_code="road_damage")
    assert first in shown and again not in shown
    one = requests.get(f"{base}/open311/v2/requests/{again}.json", timeout=10)
    assert one.status_code == 200 and "duplicate" in one.json()[0]["status_notes"]


def test_a_description_holding_characters_xml_forbids_still_gives_well_formed_xml(city):
    base, admin, *_ = city
    grid, lon, lat = a_point_in_grid(base, admin, index=9)
    request_id = file_request(city, "street_light", lon, lat, "lamp \uffff out \ufffe here")
    for path in ("requests.xml", f"requests/{request_id}.xml"):
        answer = requests.get(f"{base}/open311/v2/{path}", timeout=10)
        tree = ElementTree.fromstring(answer.content)  # raises if ill-formed
        [node] = [r for r in tree.iter("request") if r.find("service_request_id").text == request_id]
        assert node.find("description").text == "lamp \ufffd out \ufffd here"
    assert listed(base)[request_id]["description"] == "lamp \uffff out \ufffe here"  # JSON carries it as it is


def upload_photo(base, who, report_id) -> dict:
    response = requests.post(f"{base}/intake/v1/reports/{report_id}/photos", timeout=30, files={
        "file": ("p.jpg", jpeg(120, 90, metadata=True), "image/jpeg")},
        headers=auth(who, **{"Idempotency-Key": uuid.uuid4().hex}))
    assert response.status_code == 201, response.text
    return response.json()


def test_a_public_request_with_a_photo_gives_its_media_url_and_a_sensitive_one_a_rounded_place_and_none(city):
    base, admin, *_ = city
    grid, lon, lat = a_point_in_grid(base, admin, index=13)
    lamp = file_request(city, "street_light", lon, lat, "lamp with a photo")
    dumping = file_request(city, "illegal_dumping", lon, lat, "rubbish outside number 12")
    assert listed(base)[lamp]["media_url"] is None
    photo = upload_photo(base, admin, lamp)
    hidden = upload_photo(base, admin, dumping)

    shown = listed(base)
    media = shown[lamp]["media_url"]
    assert media == f"{base}/open311/v2/media/{photo['id']}"
    image = requests.get(media, timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    assert b"secret location" not in image.content and "sandbox" in image.headers["Content-Security-Policy"]
    assert (shown[lamp]["lat"], shown[lamp]["long"]) == (lat, lon)

    assert shown[dumping]["media_url"] is None
    assert (shown[dumping]["lat"], shown[dumping]["long"]) == (round(lat, 3), round(lon, 3))
    assert requests.get(f"{base}/open311/v2/media/{hidden['id']}", timeout=10).status_code == 404


def test_a_photo_of_an_internal_report_is_not_served_publicly(city):
    base, admin, *_ = city
    grid, lon, lat = a_point_in_grid(base, admin, index=17)
    response = requests.post(f"{base}/intake/v1/reports", headers=auth(admin), timeout=10, json={
        "category": "street_light", "description": "internal with a photo", "location": {"lon": lon, "lat": lat}})
    photo = upload_photo(base, admin, response.json()["id"])
    assert requests.get(f"{base}/open311/v2/media/{photo['id']}", timeout=10).status_code == 404


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-05T00:00:00"])
def test_a_start_date_outside_the_representable_range_or_without_an_offset_is_the_specs_400(city, value):
    base, *_ = city
    answer = requests.get(f"{base}/open311/v2/requests.json", params={"start_date": value}, timeout=10)
    assert answer.status_code == 400 and answer.json()[0]["code"] == 400
