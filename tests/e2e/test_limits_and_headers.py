"""Hostile requests: limits and headers. Bodies are limited per route (64 KiB for JSON actions, 64 MiB for an
area import), announced or chunked, with a 413 problem; request lines and header fields over 8 KiB are 414
and 431 problems — from werkzeug's server (`gridcase up`) and from gunicorn (production) alike; every
response carries the security headers, authenticated ones ``Cache-Control: no-store``, and no server
announces its software versions. The gateway's deploy/nginx.conf and deploy/gunicorn.conf.py are checked
to hold the same numbers."""
from __future__ import annotations

import json
import re
import runpy
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from shared import web
from tests.support.hostile import PROBLEM, assert_problem, target_fixture

target = target_fixture()
ROOT = Path(__file__).resolve().parents[2]
KIB, MIB = 1024, 1024 * 1024


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` on a socket of its own;
    the status, headers and body of the answer. For requests that ``requests`` would not send as they are."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode("latin1") + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    header_block, _, content = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return int(lines[0].split()[1]), headers, content


def chunked(data: bytes, size: int = 8 * KIB):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def json_of(length: int) -> bytes:
    """A JSON object of exactly ``length`` bytes."""
    return b'{"x": "' + b"a" * (length - 9) + b'"}'


# --- bodies --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service, path", [
    ("intake", "/intake/v1/reports"),
    ("escalation", f"/escalation/v1/cases/{uuid.uuid4()}/actions"),
])
def test_a_json_action_over_64_kib_is_refused_with_413_whether_announced_or_chunked(target, service, path):
    before = target.counts()
    body = json_of(64 * KIB + 1)

    announced = requests.post(target.url(service, path), data=body, timeout=30,
                              headers={"Content-Type": "application/json", **target.auth()})
    streamed = requests.post(target.url(service, path), data=chunked(body), timeout=30,
                             headers={"Content-Type": "application/json", **target.auth()})

    assert "64 KiB" in assert_problem(announced, 413)["detail"]
    assert streamed.request.headers.get("Transfer-Encoding") == "chunked"
    assert_problem(streamed, 413)
    assert target.counts() == before
    assert target.ready()


def test_a_json_action_just_under_its_limit_is_read(target):
    body = json_of(64 * KIB - 1)

    response = requests.post(target.url("intake", "/intake/v1/reports"), data=chunked(body), timeout=30,
                             headers={"Content-Type": "application/json", **target.auth()})

    assert_problem(response, 422, "x")  # read and judged by its schema: not a 413, not a 400


def test_a_station_sized_transfer_body_of_20_mb_is_refused_before_it_is_read(target):
    status, headers, content = raw_request(
        target.url("dispatch", "/"), f"POST /dispatch/v1/cases/{uuid.uuid4()}/transfer HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: Bearer {target.token()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {20 * MIB}")

    assert status == 413 and headers["content-type"].startswith(PROBLEM)
    assert json.loads(content)["status"] == 413


def test_an_area_import_may_be_large_but_not_over_64_mib(target):
    before = target.counts()
    not_features = [{"type": "Nothing", "padding": "p" * 1000} for _ in range(2000)]  # 2 MB
    levels = {"hq": {"type": "FeatureCollection", "features": not_features}, "subcenter": {}, "station": {},
              "grid": {}}

    large = requests.post(target.url("dispatch", "/dispatch/v1/areas"), json={"levels": levels}, timeout=60,
                          headers=target.auth())
    status, headers, _ = raw_request(
        target.url("dispatch", "/"), f"POST /dispatch/v1/areas HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {target.token()}\r\nContent-Type: application/json\r\nContent-Length: {64 * MIB + 1}")

    findings = assert_problem(large, 422)["findings"]
    assert len(findings) < 60 and any("more not_a_feature" in f["detail"] for f in findings)  # capped
    assert status == 413 and headers["content-type"].startswith(PROBLEM)
    assert target.counts() == before


@pytest.mark.parametrize("framing", [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"-1\r\n{}\r\n0\r\n\r\n"])
def test_a_chunked_body_with_broken_framing_is_a_400_problem(target, framing):
    before = target.counts()

    status, headers, content = raw_request(
        target.url("intake", "/"), f"POST /intake/v1/reports HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {target.token()}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close", framing)

    assert status == 400 and headers["content-type"].startswith(PROBLEM), (status, content[:300])
    assert target.counts() == before
    assert target.ready()


def test_a_chunked_body_of_another_type_is_refused_as_unsupported(target):
    response = requests.post(target.url("intake", "/intake/v1/reports"), data=chunked(b"lamp out"), timeout=10,
                             headers={"Content-Type": "text/plain", **target.auth()})

    assert_problem(response, 415)


# --- request lines and headers --------------------------------------------------------------------------


def test_a_request_line_over_8_kib_is_a_414_problem(target):
    response = requests.get(target.url("dispatch", "/dispatch/v1/locate"), headers=target.auth(), timeout=10,
                            params={"lon": "1" * 9000, "lat": "1"})

    assert_problem(response, 414)
    assert target.ready()


def test_a_header_field_over_8_kib_is_a_431_problem(target):
    response = requests.get(target.url("escalation", "/escalation/v1/cases"), timeout=10,
                            headers={"X-Padding": "p" * 9000, **target.auth()})

    assert_problem(response, 431)


def test_more_than_100_header_fields_are_a_431_problem(target):
    headers = {f"X-Field-{i}": "v" for i in range(110)}

    response = requests.get(target.url("escalation", "/escalation/v1/cases"), timeout=10,
                            headers={**headers, **target.auth()})

    assert_problem(response, 431)


def test_a_request_line_of_8_000_bytes_is_still_served(target):
    response = requests.get(target.url("escalation", "/escalation/v1/cases"), headers=target.auth(), timeout=10,
                            params={"category": "c" * 60, "area": "a" * 60, "x" * 7800: "1"})

    assert_problem(response, 422)  # answered by the application: the unknown parameter is refused by name


# --- headers on every response ------------------------------------------------------------------------


def responses(target) -> dict[str, requests.Response]:
    admin = target.auth()
    get = lambda service, path, **kw: requests.get(target.url(service, path), timeout=10, **kw)  # noqa: E731
    return {
        "cases (authenticated)": get("escalation", "/escalation/v1/cases", headers=admin),
        "a report (authenticated, 404)": get("intake", f"/intake/v1/reports/{uuid.uuid4()}", headers=admin),
        "categories (public)": get("intake", "/intake/v1/categories"),
        "openapi.json": get("dispatch", "/dispatch/openapi.json"),
        "docs page": get("escalation", "/escalation/docs"),
        "swagger-ui static file": get("intake", "/intake/static/swagger-ui/swagger-ui.css"),
        "readyz": get("intake", "/intake/readyz"),
        "root readyz": get("dispatch", "/readyz"),
        "metrics": get("intake", "/intake/metrics"),
        "unknown route": get("dispatch", "/dispatch/v1/nothing-here"),
        "no token": get("escalation", "/escalation/v1/cases"),
        "wrong method": requests.delete(target.url("intake", "/intake/v1/categories"), timeout=10),
    }


def test_every_response_forbids_sniffing_and_framing(target):
    for name, response in responses(target).items():
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert response.headers.get("X-Frame-Options") == "DENY", name
        assert "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", ""), name


def test_authenticated_answers_are_not_stored_by_any_cache(target):
    answers = responses(target)

    for name in ("cases (authenticated)", "a report (authenticated, 404)"):
        assert answers[name].headers.get("Cache-Control") == "no-store", name
    assert "no-store" not in answers["categories (public)"].headers.get("Cache-Control", "")


def test_every_refusal_is_a_problem_document(target):
    answers = responses(target)

    for name in ("a report (authenticated, 404)", "unknown route", "no token", "wrong method"):
        assert answers[name].headers["Content-Type"].startswith(PROBLEM), name
    assert answers["wrong method"].status_code == 405 and "GET" in answers["wrong method"].headers["Allow"]


def test_no_server_announces_its_software_versions(target):
    for name, response in responses(target).items():
        server = response.headers.get("Server", "")
        assert "Werkzeug" not in server and "Python" not in server and not re.search(r"\d+\.\d+", server), \
            (name, server)


# --- the same numbers in gunicorn's and nginx's configuration ---------------------------------------------


def test_gunicorn_conf_has_the_limits_and_the_problem_answers_of_the_services():
    conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))

    assert conf["limit_request_line"] == web.REQUEST_LINE_LIMIT
    assert conf["limit_request_fields"] == web.HEADER_FIELDS_LIMIT
    assert conf["limit_request_field_size"] == web.HEADER_FIELD_SIZE_LIMIT
    assert conf["post_worker_init"] is web.gunicorn_post_worker_init


def nginx() -> str:
    return (ROOT / "deploy" / "nginx.conf").read_text()


def test_nginx_limits_bodies_per_route_with_the_services_numbers():
    conf = nginx()
    sizes = {"64k": 64 * KIB, "12m": 12 * MIB, "64m": 64 * MIB}

    default = re.search(r"^\s{4}client_max_body_size\s+(\w+);", conf, re.M).group(1)
    areas = re.search(r"location = /dispatch/v1/areas \{[^}]*client_max_body_size\s+(\w+);", conf).group(1)
    photos = re.search(r"location ~ \^/intake/v1/reports/\[\^/\]\+/photos\$ \{[^}]*client_max_body_size\s+(\w+);",
                       conf).group(1)

    assert sizes[default] == web.DEFAULT_BODY_LIMIT
    assert sizes[areas] == web.body_limit("POST", "/dispatch/v1/areas")
    assert sizes[photos] == web.body_limit("POST", "/intake/v1/reports/abc/photos")
    assert re.search(r"large_client_header_buffers\s+\d+\s+8k;", conf) and web.REQUEST_LINE_LIMIT <= 8 * KIB


def test_nginx_answers_its_own_refusals_as_problems_with_the_security_headers():
    conf = nginx()

    for status in (413, 414, 502, 503, 504):
        assert re.search(rf"error_page {status} @problem_{status};", conf), status
    assert "error_page 494 =431 @problem_431;" in conf
    for status in (413, 414, 431, 502, 503, 504):
        block = re.search(rf"location @problem_{status} \{{(.*?)\n        \}}", conf, re.S).group(1)
        assert "default_type application/problem+json;" in block
        body = re.search(rf"return {status} '(.*)\\n';", block).group(1)
        assert json.loads(body)["status"] == status
    for header in ("X-Content-Type-Options nosniff", "X-Frame-Options DENY",
                   "Content-Security-Policy \"frame-ancestors 'none'\""):
        assert f"add_header {header} always;" in conf
