"""Who may do what, on the running embedded system: every identity (two grid workers in different
sub-centers, their two stations, a sub-center, command, a supervisor, an admin, and a token for each kind
of bad claim) against every endpoint of every service and a case inside and outside each area.

The expected answers are written out here from the product's rules (README "Roles"), not computed with
``shared.access``: outside the caller's area → 404 exactly as a missing case; a role that may never take
the action → 403; a bad token → 401, before any query or body is looked at."""
from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from PIL import Image

from tests.support.system import auth, embedded_system, report_at_level, token

GOOD = ("worker_a", "worker_b", "station_a", "station_b", "subcenter_a", "command", "supervisor", "admin")
#: who sees which case ("a" filed by worker_a in grid A, "b" by worker_b in grid B, another sub-center)
SEES = {"worker_a": {"a"}, "worker_b": {"b"}, "station_a": {"a"}, "station_b": {"b"}, "subcenter_a": {"a"},
        "command": {"a", "b"}, "supervisor": {"a", "b"}, "admin": {"a", "b"}}
BAD = ("no token", "not a JWT", "alg none", "wrong secret", "expired", "lives 31 days", "area is a list",
       "grid worker without area", "station without area", "unknown role", "role is a list", "subject is a number",
       "no subject")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


PNG = _png()


def _bad_token(kind: str, secret: str, grid: str) -> str | None:
    now = datetime.now(UTC)
    claims = {"sub": "mallory", "role": "grid_worker", "area": grid, "iat": now, "exp": now + timedelta(hours=1)}
    changes = {"expired": {"iat": now - timedelta(days=2), "exp": now - timedelta(days=1)},
               "lives 31 days": {"exp": now + timedelta(days=31)}, "area is a list": {"area": [grid]},
               "grid worker without area": {"area": None}, "station without area": {"role": "station", "area": None},
               "unknown role": {"role": "root"}, "role is a list": {"role": ["admin"]},
               "subject is a number": {"sub": 42}, "no subject": {"sub": None}}.get(kind, {})
    claims = {k: v for k, v in {**claims, **changes}.items() if v is not None}
    if kind == "no token":
        return None
    if kind == "not a JWT":
        return "not-a-token"
    if kind == "alg none":
        return jwt.encode({**claims, "role": "admin"}, None, algorithm="none")
    key = "an-attackers-guess-at-the-secret-key!!" if kind == "wrong secret" else secret
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("matrix")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        get = lambda level: requests.get(f"{base}/dispatch/v1/areas", params={"level": level, "simplify": "false"},  # noqa: E731
                                         headers=auth(admin), timeout=30).json()["features"]
        parent = {f["id"]: f["properties"]["parent"] for level in ("grid", "station") for f in get(level)}
        grids = get("grid")
        grid_a = grids[0]
        grid_b = next(g for g in grids if parent[parent[g["id"]]] != parent[parent[grid_a["id"]]])
        a, b = grid_a["id"], grid_b["id"]
        people = {
            "worker_a": token(data, "grid_worker", area=a, user="wang"),
            "worker_b": token(data, "grid_worker", area=b, user="liu"),
            "station_a": token(data, "station", area=parent[a]),
            "station_b": token(data, "station", area=parent[b]),
            "subcenter_a": token(data, "subcenter", area=parent[parent[a]]),
            "command": token(data, "command"), "supervisor": token(data, "supervisor"), "admin": admin}
        secret = (data / "secret").read_text().strip()
        people.update({kind: _bad_token(kind, secret, a) for kind in BAD})
        cases = {}
        for name, grid, who in (("a", grid_a, "worker_a"), ("b", grid_b, "worker_b")):
            from shapely.geometry import shape
            point = shape(grid["geometry"]).representative_point()
            response = requests.post(f"{base}/intake/v1/reports", headers=auth(people[who]), timeout=10, json={
                "category": "street_light", "description": f"matrix {name}",
                "location": {"lon": point.x, "lat": point.y}})
            assert response.status_code == 201, response.text
            cases[name], cases[f"number-{name}"] = response.json()["id"], response.json()["number"]
            report_at_level(base, cases[name], admin, 1, timeout=20)
            photo = requests.post(f"{base}/intake/v1/reports/{cases[name]}/photos", headers=auth(people[who]),
                                  files={"file": ("p.png", PNG, "image/png")}, timeout=10)
            assert photo.status_code == 201, photo.text
            cases[f"photo-{name}"] = photo.json()["id"]
        cases["missing"] = cases["photo-missing"] = str(uuid.uuid4())
        cases["number-missing"] = "19990101-999999"
        yield base, people, cases, (point.x, point.y)


def call(base, people, who, method, path, **kwargs):
    headers = kwargs.pop("headers", {})
    if people[who] is not None:
        headers["Authorization"] = f"Bearer {people[who]}"
    return requests.request(method, base + path, headers=headers, timeout=10, **kwargs)


def endpoints(cases, point):
    """(name, method, path, kwargs, expected(who, case) → status); ``case`` is "a", "b" or "missing"."""
    lon, lat = point
    staff = {"station_a", "station_b", "subcenter_a", "command", "admin"}

    def visible(ok):
        return lambda who, case: ok(who, case) if case in SEES[who] else 404
    return [
        ("file a report (empty body)", "POST", "/intake/v1/reports", {"json": {}}, None,
         lambda who, case: 403 if who == "supervisor" else 422),
        ("read a report", "GET", "/intake/v1/reports/{id}", {}, "case", visible(lambda who, case: 200)),
        ("list my reports", "GET", "/intake/v1/reports?mine=1", {}, None, lambda who, case: 200),
        ("add a photo", "POST", "/intake/v1/reports/{id}/photos", {"files": {"file": ("p.png", PNG, "image/png")}},
         "case", lambda who, case: 403 if who == "supervisor" else (201 if case in SEES[who] else 404)),
        ("unlink a report that is no duplicate", "POST", "/intake/v1/reports/{id}/unlink", {}, "case",
         lambda who, case: 403 if who not in staff else (409 if case in SEES[who] else 404)),
        ("list photos", "GET", "/intake/v1/reports/{id}/photos", {}, "case", visible(lambda who, case: 200)),
        ("read a photo", "GET", "/intake/v1/reports/{id}/photos/{photo}", {}, "case", visible(lambda who, case: 200)),
        ("read a thumbnail", "GET", "/intake/v1/reports/{id}/photos/{photo}/thumbnail", {}, "case",
         visible(lambda who, case: 200)),
        ("verify a case", "POST", "/intake/v1/cases/{id}/verification", {"json": {"passed": True}}, "case",
         visible(lambda who, case: 409 if who == f"worker_{case}" else 403)),
        ("locate a point", "GET", f"/dispatch/v1/locate?lon={lon}&lat={lat}", {}, None, lambda who, case: 200),
        ("list area versions", "GET", "/dispatch/v1/areas", {}, None, lambda who, case: 200),
        ("import areas (empty body)", "POST", "/dispatch/v1/areas", {"json": {}}, None,
         lambda who, case: 422 if who == "admin" else 403),
        ("transfer through dispatch's old route (gone)", "POST", "/dispatch/v1/cases/{id}/transfer",
         {"json": {"to": "NO-SUCH-AREA", "reason": "matrix"}}, "case",
         lambda who, case: 403 if who not in staff else 410),
        ("read a case", "GET", "/escalation/v1/cases/{id}", {}, "case", visible(lambda who, case: 200)),
        ("read a case by its number", "GET", "/escalation/v1/cases/by-number/{number}", {}, "case",
         visible(lambda who, case: 200)),
        ("act on a case with a stale ETag", "POST", "/escalation/v1/cases/{id}/actions",
         {"json": {"action": "acknowledge"}, "headers": {"If-Match": '"999"'}}, "case",
         visible(lambda who, case: 412)),
        ("list cases", "GET", "/escalation/v1/cases", {}, None, lambda who, case: 200),
        ("public: categories", "GET", "/intake/v1/categories", {}, None, lambda who, case: 200),
        ("public: Open311 services", "GET", "/open311/v2/services.json", {}, None, lambda who, case: 200),
        ("public: Open311 requests", "GET", "/open311/v2/requests.json", {}, None, lambda who, case: 200),
        ("public: a grid worker's report is never an Open311 request", "GET", "/open311/v2/requests/{id}.json", {},
         "case", lambda who, case: 404),
        ("Open311 submission without a key", "POST", "/open311/v2/requests.json",
         {"data": {"service_code": "street_light", "lat": "1", "long": "1"}}, None, lambda who, case: 403),
    ]


def _cells():
    for name, _method, _path, _kwargs, per_case, _expected in endpoints({}, (0, 0)):
        for who in GOOD + BAD:
            for case in (("a", "b", "missing") if per_case else (None,)):
                yield pytest.param(name, who, case, id=f"{name}-{who}-{case or 'none'}")


@pytest.mark.parametrize("endpoint, who, case", list(_cells()))
def test_each_identity_gets_exactly_the_allowed_answer_on_every_endpoint(world, endpoint, who, case):
    base, people, cases, point = world
    name, method, path, kwargs, per_case, expected = next(e for e in endpoints(cases, point) if e[0] == endpoint)
    kwargs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()}
    path = path.replace("{id}", cases.get(case, "")).replace("{photo}", cases.get(f"photo-{case}", "")).replace(
        "{number}", cases.get(f"number-{case}", ""))
    response = call(base, people, who, method, path, **kwargs)
    want = expected(who, case) if name.startswith(("public", "Open311")) or who not in BAD else 401
    assert response.status_code == want, response.text
    assert response.ok or response.headers["Content-Type"].startswith(
        "application/json" if "open311" in path else "application/problem+json")
    if who in BAD and response.status_code == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("who", GOOD)
def test_a_case_outside_the_area_answers_exactly_as_a_missing_one(world, who):
    base, people, cases, _ = world
    for case in {"a", "b"} - SEES[who]:
        for path in ("/intake/v1/reports/{id}", "/escalation/v1/cases/{id}"):
            hidden = call(base, people, who, "GET", path.replace("{id}", cases[case])).json()
            missing = call(base, people, who, "GET", path.replace("{id}", cases["missing"])).json()
            assert {k: v for k, v in hidden.items() if k != "instance"} == \
                   {k: v for k, v in missing.items() if k != "instance"}


@pytest.mark.parametrize("who", GOOD)
def test_the_case_list_holds_exactly_the_cases_of_the_callers_area(world, who):
    base, people, cases, _ = world
    items = call(base, people, who, "GET", "/escalation/v1/cases?page_size=100").json()["items"]
    listed = {name for name in ("a", "b") if cases[name] in {item["id"] for item in items}}
    assert listed == SEES[who]


@pytest.mark.parametrize("who", BAD)
def test_a_bad_token_is_refused_before_the_query_string_is_read(world, who):
    base, people, _, _ = world
    response = call(base, people, who, "GET", "/escalation/v1/cases?no_such_parameter=1")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_public_categories_need_no_token(world):
    base, people, _, _ = world
    assert call(base, people, "no token", "GET", "/intake/v1/categories").status_code == 200


def test_a_person_filing_too_fast_gets_429_with_retry_after_and_retries_do_not_count_and_are_answered(tmp_path):
    with embedded_system(tmp_path, env={"GRIDCASE_REPORT_RATE_LIMIT": "3/minute"}) as base:
        admin = token(tmp_path, "admin")
        grid = requests.get(f"{base}/dispatch/v1/areas", params={"level": "grid"}, headers=auth(admin),
                            timeout=30).json()["features"][0]["id"]
        worker = token(tmp_path, "grid_worker", area=grid, user="zhou")
        other = token(tmp_path, "grid_worker", area=grid, user="wu")

        def send(who, key, body=None):
            body = body if body is not None else {"category": "street_light", "description": key}
            return requests.post(f"{base}/intake/v1/reports", json=body, timeout=10,
                                 headers=auth(who, **{"Idempotency-Key": key})).status_code

        started = time.monotonic()
        assert [send(worker, "r1"), send(worker, "r1"), send(worker, "bad", {}), send(worker, "r2"),
                send(worker, "r3")] == [201, 201, 422, 201, 201]
        refused = requests.post(f"{base}/intake/v1/reports", json={}, headers=auth(worker), timeout=10)
        assert refused.status_code == 429
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60 + (time.monotonic() - started)
        assert send(worker, "r4") == 429
        assert send(worker, "r2") == 201, "a retry of a stored report is answered with it, over the limit too"
        assert send(other, "r1") == 201
