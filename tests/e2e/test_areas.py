"""Dispatch's area hierarchy over real HTTP: import, validation, versions, locate, routing, transfer."""
from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from services.dispatch.citygen import generate_city
from tests.support.system import ROOT, a_point_in_grid, auth, embedded_system, token, wait_for_case

BROKEN = ROOT / "tests/fixtures/broken"
LEVELS = ("hq", "subcenter", "station", "grid")


@pytest.fixture(scope="module")
def city():
    return generate_city(grids=60, stations=6, subcenters=2, seed=11)


@pytest.fixture(scope="module")
def system(tmp_path_factory, city):
    data = tmp_path_factory.mktemp("areas")
    city_file = data / "city.json"
    city_file.write_text(json.dumps(city))
    with embedded_system(data, "--city", str(city_file)) as base:
        yield base, data, token(data, "admin")


def centre(feature) -> tuple[float, float]:
    from shapely.geometry import shape

    point = shape(feature["geometry"]).representative_point()
    return point.x, point.y


def post_report(base, data, lon, lat, category="street_light"):
    worker = token(data, "command")
    response = requests.post(f"{base}/intake/v1/reports", headers=auth(worker), timeout=5, json={
        "category": category, "description": "x", "location": {"lon": lon, "lat": lat}})
    assert response.status_code == 201, response.text
    return wait_for_case(base, response.json()["id"], worker)[0]


def test_locate_answers_all_four_levels_and_a_point_outside_the_city_is_a_404_problem(system, city):
    base, _, admin = system
    grid = city["grid"]["features"][5]
    lon, lat = centre(grid)
    found = requests.get(f"{base}/dispatch/v1/locate", params={"lon": lon, "lat": lat}, headers=auth(admin)).json()
    assert found["grid"]["id"] == grid["properties"]["id"]
    assert found["station"]["id"] == grid["properties"]["parent"]
    assert found["subcenter"]["id"] and found["hq"]["id"] == "HQ" and found["triage"] is False
    assert found["version"] == 1 and found["candidates"] == []
    outside = requests.get(f"{base}/dispatch/v1/locate", params={"lon": 0, "lat": 0}, headers=auth(admin))
    assert outside.status_code == 404 and outside.headers["Content-Type"].startswith("application/problem+json")
    bad = requests.get(f"{base}/dispatch/v1/locate", params={"lon": 999, "lat": 0}, headers=auth(admin))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "lon"


def test_gcj02_input_is_converted_before_locating(system, city):
    from shared.gcj02 import wgs84_to_gcj02

    base, _, admin = system
    grid = city["grid"]["features"][7]
    lon, lat = wgs84_to_gcj02(*centre(grid))
    found = requests.get(f"{base}/dispatch/v1/locate", params={"lon": lon, "lat": lat, "crs": "gcj02"},
                         headers=auth(admin)).json()
    assert found["grid"]["id"] == grid["properties"]["id"]


def test_each_level_is_served_as_geojson_with_id_name_level_and_parent(system, city):
    base, _, admin = system
    for level in LEVELS:
        fc = requests.get(f"{base}/dispatch/v1/areas", params={"level": level}, headers=auth(admin)).json()
        assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(city[level]["features"])
        props = fc["features"][0]["properties"]
        assert set(props) == {"id", "name", "level", "parent"} and props["level"] == level


def test_an_urgent_safety_hazard_starts_at_the_subcenter(system, city):
    base, data, _ = system
    case = post_report(base, data, *centre(city["grid"]["features"][3]), category="safety_hazard")
    assert case["level"] == 3 and case["owner"]["level"] == 3


def test_a_hierarchy_with_errors_is_refused_with_findings_and_changes_nothing(system):
    base, _, admin = system
    before = requests.get(f"{base}/dispatch/v1/areas", headers=auth(admin)).json()["versions"]
    levels = {level: json.loads((BROKEN / f"{level}.geojson").read_text()) for level in LEVELS}
    levels["grid"] = json.loads((BROKEN / "grid-bowtie.geojson").read_text())
    response = requests.post(f"{base}/dispatch/v1/areas", json={"levels": levels}, headers=auth(admin), timeout=30)
    assert response.status_code == 422
    assert response.headers["Content-Type"].startswith("application/problem+json")
    findings = response.json()["findings"]
    assert any(f == {**f, "level": "grid", "feature_id": "G22", "problem": "invalid_geometry", "severity": "error"}
               for f in findings)
    assert requests.get(f"{base}/dispatch/v1/areas", headers=auth(admin)).json()["versions"] == before


def test_only_staff_may_import_areas(system):
    base, data, admin = system
    worker = token(data, "grid_worker", area=a_point_in_grid(base, admin)[0], user="w")
    response = requests.post(f"{base}/dispatch/v1/areas", json={"levels": {}}, headers=auth(worker))
    assert response.status_code == 403


def test_a_new_version_moves_exactly_the_open_cases_whose_owner_changed(system, city):
    base, data, admin = system
    grids = city["grid"]["features"]
    renamed = grids[10]["properties"]["id"]
    cases = {i: post_report(base, data, *centre(grids[i])) for i in (10, 11, 20)}
    version2 = copy.deepcopy(city)
    version2["grid"]["features"][10]["properties"]["id"] = renamed + "-NEW"
    response = requests.post(f"{base}/dispatch/v1/areas", json={"levels": version2}, headers=auth(admin), timeout=60)
    assert response.status_code == 201, response.text
    body = response.json()
    moved = {m["case_id"] for m in body["moves"]}
    assert moved == {cases[10]["id"]}
    assert body["moves"][0]["from"]["grid"] == renamed and body["moves"][0]["to"]["grid"] == renamed + "-NEW"
    detail = _eventually(lambda: _case(base, admin, cases[10]["id"]),
                         lambda c: c["owner"]["area_id"] == renamed + "-NEW")
    assert detail["level"] == 1 and detail["timeline"][-1]["type"] == "rerouted"
    for i in (11, 20):
        assert _case(base, admin, cases[i]["id"])["timeline"][-1]["type"] == "opened"
    versions = requests.get(f"{base}/dispatch/v1/areas", headers=auth(admin)).json()["versions"]
    assert [v["active"] for v in versions][-1] is True and sum(v["active"] for v in versions) == 1
    copy_rows = _eventually(lambda: _count(data / "escalation.db", "areas", f"version = {body['version']}"),
                            lambda n: n == sum(len(version2[level]["features"]) for level in LEVELS))
    assert copy_rows > 0


def test_staff_transfer_a_case_to_another_grid_and_dispatch_and_intake_follow(system, city):
    base, data, admin = system
    grids = city["grid"]["features"]
    case = post_report(base, data, *centre(grids[30]))
    target = grids[31]["properties"]["id"]
    command = token(data, "command")
    etag = requests.get(f"{base}/escalation/v1/cases/{case['id']}", headers=auth(command), timeout=5).headers["ETag"]
    response = requests.post(f"{base}/escalation/v1/cases/{case['id']}/actions", timeout=5,
                             headers=auth(command, **{"If-Match": etag}),
                             json={"action": "transfer", "to": target, "reason": "wrong side of the street"})
    assert response.status_code == 200, response.text
    moved = response.json()
    assert (moved["owner"]["area_id"], moved["level"], moved["timeline"][-1]["type"]) == (target, 1, "transferred")
    report = _eventually(lambda: requests.get(f"{base}/intake/v1/reports/{case['id']}", headers=auth(admin)).json(),
                         lambda r: r["owner_area_id"] == target)
    assert report["level"] == 1
    recorded = _eventually(lambda: _grid_of(data, case["id"]), lambda grid: grid == target)
    assert recorded == target
    nowhere = requests.post(f"{base}/escalation/v1/cases/{case['id']}/actions", timeout=5,
                            headers=auth(command, **{"If-Match": response.headers["ETag"]}),
                            json={"action": "transfer", "to": "NO-SUCH-GRID", "reason": "x"})
    assert nowhere.status_code == 422 and nowhere.json()["errors"][0]["field"] == "to"


def test_dispatch_transfer_route_is_gone_and_names_escalations_action(system, city):
    base, data, admin = system
    case = post_report(base, data, *centre(city["grid"]["features"][32]))
    response = requests.post(f"{base}/dispatch/v1/cases/{case['id']}/transfer", headers=auth(admin), timeout=5,
                             json={"to": city["grid"]["features"][33]["properties"]["id"], "reason": "x"})
    assert response.status_code == 410 and "transfer" in response.json()["detail"]
    assert response.headers["Link"] == f'</escalation/v1/cases/{case["id"]}/actions>; rel="alternate"'
    assert _grid_of(data, case["id"]) == city["grid"]["features"][32]["properties"]["id"]


def _grid_of(data, case_id) -> str:
    with sqlite3.connect(data / "dispatch.db") as db:
        return db.execute("SELECT grid_id FROM dispatches WHERE case_id = ?", (case_id,)).fetchone()[0]


def test_the_command_line_imports_berlin_and_rejects_a_broken_file(tmp_path):
    berlin = ROOT / "examples/berlin"
    files = {"hq": "berlin-lor-city.geojson", "subcenter": "berlin-lor-districts.geojson",
             "station": "berlin-lor-district-regions-until-2020.geojson",
             "grid": "berlin-lor-planning-areas-until-2020.geojson"}
    args = [sys.executable, "-m", "gridcase", "areas", "import", "--data-dir", str(tmp_path)]
    for level, name in files.items():
        args += ["--level", level, str(berlin / name)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "448" in done.stderr and "138" in done.stderr
    broken = [sys.executable, "-m", "gridcase", "areas", "validate"]
    for level in LEVELS:
        name = "grid-overlap.geojson" if level == "grid" else f"{level}.geojson"
        broken += ["--level", level, str(BROKEN / name)]
    refused = subprocess.run(broken, cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert refused.returncode == 1
    assert "overlap" in refused.stderr and "G11" in refused.stderr


def _case(base, admin, case_id):
    return requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(admin), timeout=5).json()


def _eventually(fetch, ok, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value) or time.monotonic() > deadline:
            assert ok(value), value
            return value
        time.sleep(0.05)


def _count(path: Path, table, where="1=1") -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
