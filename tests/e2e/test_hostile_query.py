"""Query strings, path ids and bodies, generated from each service's OpenAPI. An unknown query parameter is
refused naming it, on every GET of every service (``GET /escalation/v1/cases?owner=NOPE`` used to return
every case), including the operations that take no parameters at all; query text that no database could
hold is refused naming the parameter; a path id that cannot be an id answers 404 without reaching the
database. And the full breadth: every operation of the three OpenAPI descriptions, for every role, given
malformed, oversized, wrong-typed and out-of-scope inputs — each declared query parameter and each field
of each JSON body (nested ones included) in turn, malformed and non-object JSON, multipart without its
file or with a wrong kind, and path ids of a case in another sub-center — answers a 4xx RFC 9457 problem
(a 422 naming the field), never a 2xx or a 5xx, and changes nothing; a body that is no text in its encoding
is exactly a 400 naming the body on every JSON operation, for every role that may send it. On SQLite and
PostgreSQL."""
from __future__ import annotations

import json
import uuid

import pytest
import requests
from shapely.geometry import shape

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


# -- the full breadth: every operation, every role ---------------------------------------------------------

ROLES = ("grid_worker", "station", "subcenter", "command", "supervisor", "admin", "department")
METHODS = ("get", "post", "put", "patch", "delete")


def operations(target) -> list[tuple[str, str, str, dict, dict]]:
    """Every operation of every service's OpenAPI: (service, method, path template, operation, spec)."""
    found = []
    for service in SERVICES:
        spec = requests.get(target.url(service, f"/{service}/openapi.json"), timeout=10).json()
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                if method in METHODS:
                    found.append((service, method, path, {**operation, "parameters": [
                        *item.get("parameters", []), *operation.get("parameters", [])]}, spec))
    return found


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def kind(schema: dict) -> str | None:
    """The JSON type of a schema (the non-null one of a list)."""
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    return declared


def bad_query_values(schema: dict) -> list[tuple[str, str]]:
    """(what, value) a query parameter of ``schema`` must refuse."""
    out = [("not one of its choices", "zz-not-a-choice")] if "enum" in schema else []
    declared = kind(schema)
    if declared == "integer":
        return out + [("text", "abc"), ("40 digits", "9" * 40), ("a fraction", "1.5"), ("fullwidth digits", "１２")]
    if declared == "number":
        return out + [("text", "abc"), ("nan", "nan"), ("infinity", "inf"), ("1e999", "1e999")]
    if declared == "boolean":
        return out + [("maybe", "maybe")]
    return out + [("a NUL", "a\x00b"), ("3,000 characters", "x" * 3000), ("an escape sequence", "\x1b[2J")]


def bad_json_values(schema: dict) -> list[tuple[str, object]]:
    """(what, value) a JSON field of ``schema`` must refuse."""
    declared = kind(schema)
    if declared in ("integer", "number"):
        return [("a number as text", "12"), ("an object", {"a": 1}), ("10^400", 10 ** 400), ("a boolean", True)]
    if declared == "boolean":
        return [("a boolean as text", "true"), ("a number", 1)]
    if declared == "array":
        return [("an object", {"a": 1}), ("text", "x")]
    if declared == "object":
        return [("text", "x"), ("a list", [1])]
    return [("a number", 12345), ("a list", ["x"]), ("a NUL", "a\x00b"), ("5,000 characters", "x" * 5000),
            ("a lone surrogate", "\ud800"), ("a C1 control character", "a\x85b")]


def json_fields(spec: dict, schema: dict) -> list[tuple[tuple[str, ...], dict]]:
    """The fields of a JSON body schema and of its objects one level down: (keys, schema)."""
    out = []
    for name, field_schema in resolve(spec, schema).get("properties", {}).items():
        field_schema = resolve(spec, field_schema)
        out.append(((name,), field_schema))
        out += [((name, inner), resolve(spec, s)) for inner, s in field_schema.get("properties", {}).items()]
    return out


#: ``field_name`` of a body that is no text in its encoding: exactly 400 naming the body, or the 403 of a
#: role that may not send it at all (decided before the body is read).
BODY = "(the body)"


def problem_findings(what: str, response: requests.Response, field_name: str | None = None) -> list[str]:
    """Why ``response`` is not a 4xx RFC 9457 problem (a 422 naming ``field_name``; for ``BODY``, a 400
    naming the body or a 403): [] when it is."""
    content_type = response.headers.get("Content-Type", "")
    if not (400 <= response.status_code < 500 and content_type.startswith("application/problem+json")):
        return [f"{what}: {response.status_code} {content_type} {response.text[:200]}"]
    if field_name == BODY:
        detail = response.json().get("detail", "")
        if response.status_code == 403 or (response.status_code == 400 and "the body is not valid" in detail):
            return []
        return [f"{what}: {response.status_code}, not a 400 naming the body: {response.text[:200]}"]
    if response.status_code == 422 and field_name is not None:
        problem = response.json()
        named = [e.get("field", "") for e in problem.get("errors", [])]
        if not any(f == field_name or f.startswith((field_name + ".", field_name + "[")) for f in named):
            return [f"{what}: a 422 that does not name {field_name}: {problem}"]
    return []


@pytest.fixture(scope="module")
def elsewhere(target):
    """The units of one sub-center the scoped roles work in, and a case (with its number) filed in another
    sub-center: out of those roles' scope."""
    admin = target.auth("admin")
    features = {level: requests.get(target.url("dispatch", "/dispatch/v1/areas"), headers=admin, timeout=30, params={
        "level": level, "simplify": "false"}).json()["features"] for level in ("grid", "station")}
    parent = {f["id"]: f["properties"]["parent"] for level in features.values() for f in level}
    grids = features["grid"]
    home = grids[0]["id"]
    away = next(g for g in grids if parent[parent[g["id"]]] != parent[parent[home]])
    point = shape(away["geometry"]).representative_point()
    filed = requests.post(target.url("intake", "/intake/v1/reports"), timeout=10, headers=target.auth(
        "grid_worker", area=away["id"], sub="far-away"), json={
        "category": "street_light", "description": "out of scope", "location": {"lon": point.x, "lat": point.y}})
    assert filed.status_code == 201, filed.text
    target.counts()  # the case has reached every service
    etag = requests.get(target.url("escalation", f"/escalation/v1/cases/{filed.json()['id']}"), headers=admin,
                        timeout=10).headers["ETag"]
    return {"grid": home, "station": parent[home], "subcenter": parent[parent[home]], "case": filed.json()["id"],
            "number": filed.json()["number"], "point": (point.x, point.y), "away": away["id"], "etag": etag}


def scoped_auth(target, role: str, units: dict) -> dict:
    area = {"grid_worker": units["grid"], "station": units["station"], "subcenter": units["subcenter"]}.get(role)
    claims = {"department": "water"} if role == "department" else {}
    return target.auth(role, sub=f"hostile-{role}", area=area, **claims)


def valid_bodies(units: dict) -> dict:
    """A body each JSON operation would take, so that one bad field at a time is the only fault."""
    lon, lat = units["point"]
    return {
        ("post", "/intake/v1/reports"): {"category": "street_light", "description": "hostile",
                                         "location": {"lon": lon, "lat": lat}},
        ("post", "/intake/v1/cases/{case_id}/verification"): {"passed": True, "note": ""},
        ("post", "/escalation/v1/cases/{case_id}/actions"): {"action": "transfer", "to": units["grid"],
                                                              "reason": "hostile"},
        ("post", "/escalation/v1/stats/replay"): {"policy": "", "from": "2026-01-01", "to": "2026-02-01"},
        ("post", "/escalation/v1/warnings/{item_id}/actions"): {"action": "acknowledge"},
        ("post", "/escalation/v1/subscriptions"): {"events": ["assigned"], "channel": "inapp", "user": "hostile"},
        ("post", "/escalation/v1/notifications/read"): {"all": True},
    }


#: The roles that see part of the city only (a department: the cases assigned to it).
SCOPED = ("grid_worker", "station", "subcenter", "department")


def fill(path: str, units: dict, role: str) -> str:
    """The path with its ids: for a role that sees part of the city, the case of another sub-center (out of
    its scope); random ids for the rest, and for the roles that see the whole city."""
    case, number = (units["case"], units["number"]) if role in SCOPED else (str(uuid.uuid4()), "19990101-0")
    ids = {"{case_id}": case, "{report_id}": case, "{number}": number, "{photo_id}": str(uuid.uuid4()),
           "{item_id}": str(uuid.uuid4()), "{subscription_id}": str(uuid.uuid4())}
    for name, value in ids.items():
        path = path.replace(name, value)
    return path


def hostile_requests(operation: tuple, units: dict, role: str):
    """(what, method, path, request keyword arguments, field named) for every hostile input of ``operation``
    sent by ``role``."""
    service, method, template, spec_operation, spec = operation
    path = fill(template, units, role)
    name = f"{method.upper()} {template}"
    for parameter in spec_operation["parameters"]:
        if parameter["in"] == "query":
            for what, value in bad_query_values(resolve(spec, parameter.get("schema", {}))):
                yield (f"{name} ?{parameter['name']}= {what}", method, path, {"params": {parameter["name"]: value}},
                       parameter["name"])
    if "{" in template:  # the path alone, with an id out of the caller's scope (or none at all)
        yield f"{name} {'out of scope' if role in SCOPED else 'missing'}", method, path, {}, None
    content = spec_operation.get("requestBody", {}).get("content", {})
    headers = {"If-Match": '"1"', "Content-Type": "application/json"}
    if "application/json" in content:
        for what, raw in (("malformed JSON", b'{"a":'), ("a list", b"[]"), ("a string", b'"x"'),
                          ("nested 100 deep", b"[" * 100 + b"]" * 100)):
            yield f"{name} body {what}", method, path, {"data": raw, "headers": headers}, None
        yield f"{name} body invalid UTF-8", method, path, {"data": b'{"a": "\xff"}', "headers": headers}, BODY
        base = valid_bodies(units).get((method, template), {})
        if "{" in template and role in SCOPED and base:  # a body it would take, for a case it may not see
            yield (f"{name} a valid body, out of scope", method, path,
                   {"data": json.dumps(base), "headers": {**headers, "If-Match": units["etag"]}}, None)
        for keys, field_schema in json_fields(spec, content["application/json"]["schema"]):
            for what, value in bad_json_values(field_schema):
                body = json.loads(json.dumps(base))
                holder = body
                if len(keys) == 2:
                    holder = body[keys[0]] = dict(body.get(keys[0]) or {}) if isinstance(body.get(keys[0]),
                                                                                           dict) else {}
                holder[keys[-1]] = value
                yield (f"{name} .{'.'.join(keys)} {what}", method, path,
                       {"data": json.dumps(body, ensure_ascii=True), "headers": headers}, ".".join(keys))
    if "multipart/form-data" in content:
        png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
        for what, files, data, field_name in (("no file", None, {"kind": "before"}, "file"),
                                              ("a kind that is none", {"file": ("p.png", png, "image/png")},
                                               {"kind": "zz"}, "kind"),
                                              ("text for an image", {"file": ("p.png", b"hello", "image/png")},
                                               {}, None)):
            yield f"{name} multipart {what}", method, path, {"files": files, "data": data}, field_name


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_refuses_every_hostile_input_of_every_role_and_changes_nothing(target, elsewhere, role):
    operations_ = operations(target)
    assert len(operations_) >= 30, [f"{o[1]} {o[2]}" for o in operations_]
    auth = scoped_auth(target, role, elsewhere)
    outside = requests.get(target.url("escalation", f"/escalation/v1/cases/{elsewhere['case']}"), timeout=10,
                           headers=target.auth("admin")).headers["ETag"]
    before = target.counts()
    findings, sent = [], 0
    for operation in operations_:
        for what, method, path, arguments, field_name in hostile_requests(operation, elsewhere, role):
            headers = {**auth, "Idempotency-Key": uuid.uuid4().hex, **arguments.pop("headers", {})}
            with requests.request(method, target.url(operation[0], path), headers=headers, timeout=(10, 30),
                                  stream=path.endswith("/events"), **arguments) as response:
                findings += problem_findings(f"{role} {what}", response, field_name)
            sent += 1

    assert sent >= 400 and findings == [], f"{len(findings)} of {sent}:\n" + "\n".join(findings[:40])
    assert target.counts() == before
    assert requests.get(target.url("escalation", f"/escalation/v1/cases/{elsewhere['case']}"), timeout=10,
                        headers=target.auth("admin")).headers["ETag"] == outside, "the case out of scope is unchanged"
    assert target.ready()


#: Bodies that are no text in the encoding they are sent in: each is a 400 naming the body, on every
#: operation that takes JSON (``shared/web.py:GridcaseParser``), before any field is read.
UNDECODABLE = (("invalid UTF-8", b'{"a": "\xff"}'), ("an encoded UTF-16 surrogate", b'{"a": "\xed\xa0\x80"}'),
               ("a cut multi-byte character", b'{"a": "\xe4\xb8"}'), ("an overlong encoding", b'{"a": "\xc0\xaf"}'),
               ("a UTF-16 body with an odd byte", '{"a": 1}'.encode("utf-16-le") + b"\x00"))


def test_every_operation_that_takes_json_answers_400_naming_the_body_to_bytes_that_are_no_text(target, elsewhere):
    """Invalid UTF-8 JSON was answered 422 on some operations where the documentation says 400. Every role
    sends each body to every JSON operation: the answer is 400 naming the body, or the 403 the same role
    gets for a readable body (it may not do this at all, which is decided before the body is read); every
    operation answers 400 to some role. Nothing is stored."""
    before = target.counts()
    findings, decoded = [], {}
    for operation in operations(target):
        service, method, template, spec_operation, _spec = operation
        if "application/json" not in spec_operation.get("requestBody", {}).get("content", {}):
            continue
        name = f"{method.upper()} {template}"
        decoded[name] = set()
        for role in ROLES:
            auth = scoped_auth(target, role, elsewhere)
            url = target.url(service, fill(template, elsewhere, role))

            def send(body: bytes, method=method, url=url, auth=auth) -> requests.Response:
                return requests.request(method, url, data=body, timeout=30, headers={
                    **auth, "Content-Type": "application/json", "If-Match": '"1"',
                    "Idempotency-Key": uuid.uuid4().hex})

            readable = None
            for what, body in UNDECODABLE:
                answer = send(body)
                problem = answer.json() if answer.headers.get("Content-Type", "").startswith(
                    "application/problem+json") else {}
                if answer.status_code == 400 and "the body is not valid" in problem.get("detail", ""):
                    decoded[name].add(role)
                    continue
                readable = readable or send(b"{}")
                if not (answer.status_code == readable.status_code == 403 and problem):
                    findings.append(f"{role} {name} {what}: {answer.status_code} {answer.text[:200]} "
                                    f"(a readable body: {readable.status_code})")
    assert len(decoded) >= 7, sorted(decoded)
    assert findings == [], f"{len(findings)}:\n" + "\n".join(findings[:40])
    assert [name for name, roles in decoded.items() if not roles] == []
    assert target.counts() == before


@pytest.mark.parametrize("if_match", ["garbage", '"', '"abc"', '"3', '"1", garbage', '"' + "9" * 40 + '"'])
def test_an_if_match_that_is_no_etag_is_refused_naming_it_not_answered_the_case_changed(target, elsewhere, if_match):
    """``If-Match: garbage`` answered 412 "the case changed since you read it": false, and so for ever."""
    path = f"/escalation/v1/cases/{elsewhere['case']}/actions"
    before = requests.get(target.url("escalation", path.removesuffix("/actions")), headers=target.auth("admin"),
                          timeout=10).headers["ETag"]

    response = requests.post(target.url("escalation", path), headers={**target.auth("command", sub="chen"),
                             "If-Match": if_match}, json={"action": "transfer", "to": elsewhere["grid"],
                                                          "reason": "hostile"}, timeout=10)

    assert_problem(response, 422, "If-Match")
    assert requests.get(target.url("escalation", path.removesuffix("/actions")), headers=target.auth("admin"),
                        timeout=10).headers["ETag"] == before


@pytest.mark.parametrize("last_event_id", ["abc", "-1", "9" * 19, "1 2", "４２"])
def test_a_last_event_id_that_no_feed_gave_is_refused_naming_it(target, last_event_id):
    """A malformed ``Last-Event-ID`` was silently taken for none: the client was sent "from now" unasked."""
    response = requests.get(target.url("escalation", "/escalation/v1/cases/events"), timeout=10, stream=True,
                            headers={**target.auth("admin"), "Accept": "text/event-stream",
                                     "Last-Event-ID": last_event_id.encode()})
    with response:
        assert_problem(response, 422, "Last-Event-ID")


def test_every_operation_takes_its_body_only_in_the_media_type_it_declares(target, elsewhere):
    """A JSON operation given a form or multipart body answered 422 "category: missing" (the body read as an
    empty form): the wrong media type is 415, saying which one to send; nothing is stored."""
    before = target.counts()
    auth = target.auth("admin")
    findings = []
    for service, method, template, operation, _spec in operations(target):
        content = operation.get("requestBody", {}).get("content", {})
        path = target.url(service, fill(template, elsewhere, "admin"))
        wrong = []
        if "application/json" in content:
            wrong += [("a form", {"data": {"category": "street_light"}}),
                      ("multipart", {"files": {"file": ("a.json", b"{}", "application/json")}})]
        if "multipart/form-data" in content:
            wrong += [("JSON", {"json": {"kind": "before"}})]
        for what, arguments in wrong:
            response = requests.request(method, path, headers={**auth, "If-Match": '"1"'}, timeout=10, **arguments)
            if response.status_code != 415 or not response.headers["Content-Type"].startswith(
                    "application/problem+json"):
                findings.append(f"{method.upper()} {template} with {what}: {response.status_code} "
                                f"{response.text[:150]}")
            elif what != "JSON" and "application/json" not in response.json()["detail"]:
                findings.append(f"{method.upper()} {template} with {what}: does not say to send JSON")
    assert findings == []
    assert target.counts() == before
