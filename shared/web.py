"""What every service's HTTP side shares: the app factory, RFC 9457 problems, auth, health, metrics,
and the edge rules every request meets before a view sees it.

The edge rules, each in one place for all three services (embedded and under gunicorn):

- **JSON bodies** are read by ``GridcaseParser``: a UTF-8 (or UTF-16/32) byte-order mark is accepted;
  a body nested deeper than ``JSON_MAX_DEPTH``, or one Python cannot turn into values (an integer of
  more than 4,300 digits), is a 400 problem — never a ``RecursionError`` escaping as a 500.
- **Unknown parameters** are refused: every query schema raises on unknown names, and a view without
  query arguments refuses any query string (422 naming each parameter).
- **Path ids** (``/cases/<case_id>``) that no database could hold (NUL, control characters, over
  ``LIMITS["resource_id"]`` characters) answer 404 without touching the database.
- **Body limits** per route (``BODY_LIMITS``; the gateway's ``deploy/nginx.conf`` has the same numbers),
  announced or chunked: over the limit is a 413 problem.
- **Request line and header limits** (``REQUEST_LINE_LIMIT``, ``HEADER_FIELDS_LIMIT``,
  ``HEADER_FIELD_SIZE_LIMIT``), the same in the embedded server, gunicorn and nginx, answered 414/431
  as problems.
- **Errors**: every error a view or the domain raises as ``shared.words.Problem`` (each service's
  domain refusals derive from it) is answered here, once, as a problem with its stable ``code`` member
  and its ``title`` and ``detail`` in the caller's language (``caller_language``: ``Accept-Language``,
  Chinese or English, English by default); flask-smorest's and werkzeug's errors likewise carry a code
  (``http.<status>``, or ``request.invalid`` for a request that does not validate) and a translated title.
- **Headers** on every response: ``X-Content-Type-Options: nosniff``, frame protection
  (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``), ``Referrer-Policy: no-referrer``, and
  ``Cache-Control: no-store`` on every answer to a request that carried credentials (personal data).
  The embedded server calls itself ``gridcase`` in ``Server``, without its software versions.
"""
from __future__ import annotations

import functools
import http
import inspect
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import flask_smorest
import orjson
import sqlalchemy as sa
import structlog
from flask import Flask, Response, current_app, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api, abort
from flask_smorest.utils import prepare_response
from gunicorn.http.errors import ParseException as GunicornParseError
from marshmallow import INCLUDE, RAISE, Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

from shared import logs
from shared.access import ACTIONS, Decision, Resource, decide
from shared.auth import AuthError, Identity, TokenVerifier
from shared.fields import LIMITS, storable_problem
from shared.words import MESSAGES, Message, Problem, Said, language_of, say, validation

log = logging.getLogger("gridcase.http")
access_log = structlog.get_logger("gridcase.access")
PROBLEM = "application/problem+json"
#: The answers whose words may follow the caller's ``Accept-Language`` (and so carry ``Vary: Accept-Language``).
TRANSLATED = frozenset({"application/json", PROBLEM, "text/csv", "text/event-stream"})
STATIC = Path(__file__).with_name("static")
BODY_TYPES = {"application/json", "multipart/form-data", "application/x-www-form-urlencoded"}
KIB, MIB = 1024, 1024 * 1024
#: Body limits, first match wins: (methods, path pattern, bytes). Everything else: ``DEFAULT_BODY_LIMIT``.
#: A JSON action or transfer is a few hundred bytes; an area import is a city's four GeoJSON levels
#: (Berlin's 448 planning areas are 6 MB); a photo is capped at 10 MB by intake, plus multipart framing.
BODY_LIMITS: tuple[tuple[frozenset[str], re.Pattern, int], ...] = (
    (frozenset({"POST"}), re.compile(r"/dispatch/v1/areas"), 64 * MIB),
    (frozenset({"POST", "PUT"}), re.compile(r"/intake/v1/reports/[^/]+/photos"), 12 * MIB),
    (frozenset({"POST"}), re.compile(r"/escalation/v1/stats/replay"), 1 * MIB),  # a city's whole policy file
)
DEFAULT_BODY_LIMIT = 64 * KIB
#: Request line, header count and header size: gunicorn's ``limit_request_*`` settings, the embedded
#: server's, and nginx's ``large_client_header_buffers 4 8k``.
REQUEST_LINE_LIMIT = 8190
HEADER_FIELDS_LIMIT = 100
HEADER_FIELD_SIZE_LIMIT = 8190
#: Field errors listed in one problem (a body of 100,000 unknown names is not answered with 100,000 lines).
MAX_ERRORS = 50
#: JSON deeper than this is refused before any schema sees it (GeoJSON in an import is about 10 deep).
JSON_MAX_DEPTH = 64
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
REQUESTS = Counter("gridcase_http_requests_total", "HTTP requests", ["service", "method", "status"])
LATENCY = Histogram("gridcase_http_request_seconds", "HTTP request latency", ["service"])


def body_limit(method: str, path: str) -> int:
    """The largest request body, in bytes, that ``method path`` accepts (``BODY_LIMITS``)."""
    for methods, pattern, limit in BODY_LIMITS:
        if method in methods and pattern.fullmatch(path):
            return limit
    return DEFAULT_BODY_LIMIT


def printable(text: str, limit: int = 200) -> str:
    """``text`` made safe to echo in an answer: lone surrogates and control characters written as
    ``\\uXXXX`` escapes (a lone surrogate cannot be encoded as UTF-8 at all), cut to ``limit`` characters."""
    text = str(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


def caller_language() -> str:
    """``en`` or ``zh``: the language this request's caller reads (``shared.words.language_of`` over
    ``Accept-Language``; English when it asks for neither or there is no request)."""
    try:
        return language_of(request.accept_languages)
    except RuntimeError:  # outside a request
        return "en"


def problem(status: int, title: str | None = None, detail: str = "", *, errors: list | None = None,
            headers: dict | None = None, code: str | None = None, **members) -> Response:
    """An RFC 9457 problem response; ``members`` are extension members (e.g. ``findings``).

    ``code``: the stable key of what went wrong (``shared/words.toml``), sent as the ``code`` member;
    default ``http.<status>``. ``title``: the HTTP status phrase in the caller's language (a ``title``
    given is used only for a status the catalogue has no phrase for). Field names and details are
    echoed through ``printable``: input that cannot be stored cannot be sent back either. At most
    ``MAX_ERRORS`` field errors are listed; ``errors_omitted`` counts the rest."""
    phrase = f"http.{status}"
    lang = caller_language()
    title = say(phrase, lang) if phrase in MESSAGES else (title or http.HTTPStatus(status).phrase)
    body = {"type": "about:blank", "title": title, "status": status, "code": code or phrase}
    if detail:
        body["detail"] = printable(detail, 2000)
    if errors:
        body["errors"] = [{"field": printable(e["field"]), "detail": printable(e["detail"], 1000)}
                          for e in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            body["errors_omitted"] = len(errors) - MAX_ERRORS
    body.update(members)
    body["instance"] = printable(request.path)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM
    response.headers.extend(headers or {})
    response.headers["Content-Language"] = lang
    response.vary.add("Accept-Language")
    return response


def answer_problem(error: Problem) -> Response:
    """The one HTTP edge of every refusal raised as ``shared.words.Problem``: its status, its ``code``,
    its detail in the caller's language and, when it names a request field, that field in ``errors``.
    A 403 or 404 is an access denial and is logged as one (who, what, why)."""
    if error.status in (403, 404):
        caller = g.get("identity")
        access_log.warning("access denied", reason="forbidden" if error.status == 403 else "not found",
                           code=error.code, method=request.method, path=printable(request.path),
                           user=caller.user if caller else None, role=caller.role if caller else None,
                           area=caller.area if caller else None)
    detail = error.detail(caller_language())
    errors = [{"field": error.field, "detail": detail}] if error.field else None
    summary = f"{error.field}: {detail}" if error.field and error.status == 422 else detail  # as webargs' 422s
    return problem(error.status, None, summary, errors=errors, headers=error.headers, code=error.code)


def flatten_errors(messages, prefix: str = "", translate: Callable[[str], str] = str) -> list[dict]:
    """``{"location": {"lon": ["Not a number."]}}`` → ``[{"field": "location.lon", "detail": ...}]``, each
    message passed through ``translate`` (``shared.words.validation`` in the caller's language)."""
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out += flatten_errors(value, f"{prefix}.{key}" if prefix else str(key), translate)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"field": prefix, "detail": " ".join(translate(m) for m in messages)}]
    return [{"field": prefix, "detail": translate(str(messages))}]


class FieldProblem(Schema):
    field = fields.String()
    detail = fields.String()


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error response is written."""

    class Meta:
        unknown = INCLUDE  # extension members (e.g. ``findings``) are allowed

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(fields.Nested(FieldProblem))
    errors_omitted = fields.Integer(metadata={"description": "field errors beyond the first 50, not listed"})


class GridcaseParser(FlaskParser):
    """webargs' Flask parser with gridcase's rules for bodies and query strings.

    - Query strings, like JSON bodies, refuse unknown names (webargs ignores them by default).
    - A chunked JSON body that reaches the route's limit is a 413 (werkzeug would cut it short silently).
    - JSON bodies: the one place a request body becomes Python values. The encoding is detected as
      ``json.loads`` does (a byte-order mark, UTF-16/32; RFC 8259 §8.1 lets a parser ignore a BOM; Esri
      tools write one) and the bytes decoded strictly: bytes that are not text in it (invalid UTF-8,
      an encoded surrogate) are a 400 problem, as is a body nested over ``JSON_MAX_DEPTH`` deep, deep
      enough to exhaust the parser's recursion, or holding an integer Python will not convert (over
      4,300 digits).
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def _raw_load_json(self, req):
        if not webargs_core.is_json(req.mimetype):
            return webargs_core.missing
        data = req.get_data(cache=True)
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(data) >= limit:
            # A chunked body is cut at the limit by werkzeug without a word; the cut text would then be
            # answered "invalid JSON" (400). A chunked body that reaches the limit is too large.
            abort(413, message=Said("request.too_large", limit=_size(limit)))
        encoding = json.detect_encoding(data)
        try:
            # Decoded strictly here: json.loads(bytes) decodes with "surrogatepass", so the bytes of a UTF-16
            # surrogate (ED A0 80, not UTF-8) would become a lone surrogate and be refused later as a field's
            # 422 instead of as the undecodable body it is.
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            abort(400, message=Said("body.not_encoded", encoding=_ENCODING_NAMES.get(encoding, encoding),
                                    byte=exc.start))
        try:
            value = json.loads(text, object_pairs_hook=_unique_names)
        except DuplicateName as exc:
            abort(400, message=Said("body.name_twice", name=repr(printable(exc.name, 64))))
        except json.JSONDecodeError:
            raise
        except RecursionError:
            abort(400, message=Said("body.too_deep", max=JSON_MAX_DEPTH))
        except ValueError:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
            abort(400, message=Said("body.unreadable_value", max=sys.get_int_max_str_digits()))
        if _depth_exceeds(value, JSON_MAX_DEPTH):
            abort(400, message=Said("body.too_deep", max=JSON_MAX_DEPTH))
        return value

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort(400, message=Said("body.not_json", problem=json_problem(error), line=error.lineno, column=error.colno))


#: The kinds of error the standard JSON parser reports (the start of its message) → the catalogue's words
#: for each: the caller reads what was wrong and where in their language, never the parser's English.
_JSON_PROBLEMS = (
    ("Expecting value", "json.expecting_value"),
    ("Expecting property name", "json.expecting_name"),
    ("Expecting ':'", "json.expecting_colon"),
    ("Expecting ','", "json.expecting_comma"),
    ("Unterminated string", "json.unterminated_string"),
    ("Invalid control character", "json.control_character"),
    ("Invalid \\", "json.bad_escape"),
    ("Extra data", "json.extra_data"),
    ("Illegal trailing comma", "json.trailing_comma"),
)


def json_problem(error: json.JSONDecodeError) -> Message:
    """What ``json`` found wrong in a body, as a catalogue message (``json.*``; ``json.syntax`` for a kind
    of error this list does not know): the line and column travel beside it (``body.not_json``)."""
    kind = error.msg
    return Message(next((key for start, key in _JSON_PROBLEMS if kind.startswith(start)), "json.syntax"))


#: What ``json.detect_encoding`` calls the encodings of RFC 8259 §8.1, as a client would name them.
_ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-16-le": "UTF-16",
                   "utf-16-be": "UTF-16", "utf-32": "UTF-32", "utf-32-le": "UTF-32", "utf-32-be": "UTF-32"}


class DuplicateName(ValueError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _unique_names(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a name given twice (a parser would otherwise keep one silently)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        for name, _ in pairs:
            if name in seen:
                raise DuplicateName(name)
            seen.add(name)
    return value


def _depth_exceeds(value, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


PARSER = GridcaseParser()


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose ``@blp.arguments`` parse with gridcase's rules (``GridcaseParser``);
    every service's API declares its routes on one."""

    ARGUMENTS_PARSER = PARSER

    def arguments(self, schema, *args, **kwargs):
        """``flask_smorest.Blueprint.arguments`` with a schema class made an instance once: webargs
        builds a schema given as a class anew for every request (0.15 ms of a report's 2.3 ms)."""
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)


class ProblemApi(Api):
    """flask-smorest's Api with every error answered, and documented, as ``application/problem+json``."""

    ERROR_SCHEMA = ProblemSchema
    PASSED_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        errors = None
        messages = data.get("errors") or data.get("messages")
        if messages:
            # webargs nests by location ("json", "query"); the field path is what a client needs.
            if isinstance(messages, dict) and set(messages) <= {"json", "query", "form", "files", "headers"}:
                merged = {}
                for location, value in messages.items():
                    merged.update(value if isinstance(value, dict) else {location: value})
                messages = merged
            lang = caller_language()
            errors = flatten_errors(messages, translate=lambda message: validation(message, lang))
        if error.code >= 500:
            log.exception("internal error", exc_info=error.original_exception
                          if hasattr(error, "original_exception") else None)
        detail = data.get("message") or (error.description if error.code != 422 else "")
        if isinstance(detail, Said):  # gridcase's own words, in the caller's language
            detail = detail.message.text(caller_language())
        if error.code == 422 and errors and not detail:
            detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors[:MAX_ERRORS])
        headers = {k: v for k, v in error.get_headers() if k in self.PASSED_HEADERS}
        headers.update(data.get("headers") or {})
        code = "request.invalid" if error.code == 422 and errors else None
        return problem(error.code, error.name, detail, errors=errors, headers=headers, code=code)


class JSONAnswers(DefaultJSONProvider):
    """Flask's JSON provider writing answers with orjson: the same document as Flask's (keys sorted,
    non-ASCII characters as they are, compact, Flask's ``default`` for what JSON has no type for —
    dates as HTTP dates, decimals as text, dataclasses as objects), in a fraction of the standard
    encoder's time. What orjson refuses (an integer over 64 bits, a key that is not text, a lone
    surrogate) and the indented answers of debug mode go through the standard encoder, as before."""

    ensure_ascii = False
    OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

    def response(self, *args, **kwargs) -> Response:
        if (self.compact is None and self._app.debug) or self.compact is False or not self.sort_keys:
            return super().response(*args, **kwargs)
        try:
            body = orjson.dumps(self._prepare_response_obj(args, kwargs), default=self.default, option=self.OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is one
            return super().response(*args, **kwargs)
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)


class _Flask(Flask):
    """Flask, asking a plain function's code whether it is a coroutine: Flask asks for every view,
    decorator layer and hook of every request (nine times a report), through ``inspect``, which
    unwraps and looks each one up again."""

    def ensure_sync(self, func):
        code = getattr(func, "__code__", None)  # a function's, or a bound method's (its function's)
        if code is not None and not code.co_flags & inspect.CO_COROUTINE \
                and not hasattr(func, "_is_coroutine_marker"):  # inspect.markcoroutinefunction (3.12)
            return func
        return super().ensure_sync(func)


def create_app(service: str, *, title: str, blueprint, readiness: dict[str, Callable[[], None]],
               details: Callable[[], dict] | None = None, secret: str, jwks: str | None = None,
               jwt_audience: str | None = None, jwt_issuer: str | None = None,
               max_body: int = 256 * MIB, service_object=None, revoked=None, units=None) -> Flask:
    """One service's Flask app with the edge rules of this module, its blueprint registered, its
    health, readiness (``details``: what it reports beyond its checks) and metrics routes.

    ``max_body`` is only a ceiling over the per-route limits of ``BODY_LIMITS`` (the smaller wins).
    ``revoked``: asked for every token (``shared.auth.TokenVerifier``; ``shared.revocations``); ``units``:
    asked for every token verified, whether its subject is a unit's id (``shared.auth``)."""
    # Swagger UI is served from the package (shared/static/swagger-ui, swagger-ui-dist 5): no CDN.
    app = _Flask(f"gridcase.{service}", static_folder=str(STATIC), static_url_path=f"/{service}/static")
    app.config.update(
        API_TITLE=title, API_VERSION="v1", OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=f"/{service}", OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs", OPENAPI_SWAGGER_UI_URL=f"/{service}/static/swagger-ui/",
        MAX_CONTENT_LENGTH=min(max_body, DEFAULT_BODY_LIMIT), JSON_SORT_KEYS=False,
        GRIDCASE_TOKENS=TokenVerifier(secret, jwks, audience=jwt_audience, issuer=jwt_issuer, revoked=revoked,
                                      units=units),
        GRIDCASE_SERVICE=service,
    )
    app.json = JSONAnswers(app)
    api = ProblemApi(app, spec_kwargs={"security": [{"bearer": []}], "components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}}})

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def _database_down(exc):
        log.warning("database unavailable: %s", exc)
        return answer_problem(Problem("request.database_down", http_status=503, headers={"Retry-After": "5"}))

    app.register_error_handler(Problem, answer_problem)

    @app.errorhandler(GunicornParseError)
    def _malformed_body(exc):
        # gunicorn finds a broken chunked body only when the application reads it: a client error, not a 500
        log.info("malformed request body: %s", printable(str(exc), 200))
        return answer_problem(Problem("body.malformed", http_status=400))

    operations: dict[tuple[str | None, str], _Operation] = {}  # (endpoint, method) → what _start checks
    requests: dict[tuple[str, int], object] = {}  # (method, status) → REQUESTS' counter
    latency = LATENCY.labels(service)

    @app.before_request
    def _start():
        req, ctx = request._get_current_object(), g._get_current_object()  # the proxies, resolved once
        ctx.started = time.perf_counter()
        ctx.trace = logs.enter(req.headers.get("traceparent"), service=service, path=req.path)
        method = req.method
        limit = min(body_limit(method, req.path), max_body)
        req.max_content_length = limit  # a chunked body is cut at the limit while it is read: 413
        if req.content_length is not None and req.content_length > limit:
            return too_large(limit)
        endpoint = req.endpoint
        operation = operations.get((endpoint, method))
        if operation is None:  # the routes are all registered before the first request: each is read once
            operation = operations[endpoint, method] = _Operation.of(_api_view(app, endpoint, method))
        if operation.access:
            authorize(operation.access)  # authentication and the role rule before the query or body is read
        if method in ("POST", "PUT", "PATCH") and _has_body() and req.mimetype not in operation.body_types:
            return answer_problem(Problem("request.unsupported_type", http_status=415,
                                          accepted=" or ".join(sorted(operation.body_types)),
                                          type=req.mimetype or Message("request.no_content_type")))
        args = req.args if req.query_string else None
        repeated = sorted(name for name in args if len(args.getlist(name)) > 1) if args else ()
        if repeated:
            return problem(422, "Unprocessable Entity",
                           say("request.repeated_query", caller_language(), names=", ".join(repeated)),
                           code="request.repeated_query",
                           errors=[{"field": n, "detail": "Given more than once: send it once."} for n in repeated])
        if operation.view is None:
            return refuse_query() if endpoint in _PROBES else None
        for name, value in (req.view_args or {}).items():
            if isinstance(value, str) and (len(value) > LIMITS["resource_id"] or storable_problem(value)):
                return answer_problem(Problem("request.not_an_id", http_status=404, name=name))
        if args and not operation.parses_query:
            return _unknown_query(sorted(set(args)))
        return None

    @app.teardown_request
    def _end(_exc):
        trace = g.get("trace")
        if trace is not None:
            logs.leave(trace)

    @app.after_request
    def _count(response):
        if response.mimetype in TRANSLATED:  # its words follow the caller's language: caches must keep each
            response.vary.add("Accept-Language")
        if service_object is not None:  # the pages show every time in the city's zone, not the browser's
            response.headers["Gridcase-Time-Zone"] = service_object.settings.time_zone
        key = (request.method, response.status_code)
        counter = requests.get(key)
        if counter is None:
            counter = requests[key] = REQUESTS.labels(service, *key)
        counter.inc()
        started = g.get("started")
        if started is not None:
            latency.observe(time.perf_counter() - started)
        return response

    app.wsgi_app = SecureHeaders(app.wsgi_app)

    def healthz():
        return {"status": "ok", "service": service}

    app.config["GRIDCASE_READINESS"] = readiness

    def readyz():
        failures = readiness_failures(readiness)
        if failures:
            return problem(503, "Service Unavailable", f"{service} is not ready",
                           errors=[{"field": k, "detail": v} for k, v in failures.items()])
        body = {"status": "ready", "service": service, "checks": sorted(readiness)}
        if details is not None:  # what the service reports about itself (escalation: its timers)
            body["detail"] = details()
        return body

    def metrics():
        if details is not None:
            details()  # refreshes the gauges it reports through
        return metrics_response(service_object.settings.metrics_dir if service_object else None)

    for path, view in (("healthz", healthz), ("readyz", readyz), ("metrics", metrics)):
        app.add_url_rule(f"/{service}/{path}", path, view)
        app.add_url_rule(f"/{path}", f"{path}_root", view)  # a lone service process answers at its root too
    app.extensions["gridcase"] = service_object
    api.register_blueprint(blueprint)
    return app


def current_service():
    """The built service (``shared.bootstrap.Service``) whose app serves this request."""
    return current_app.extensions["gridcase"]


def too_large(limit: int) -> Response:
    return answer_problem(Problem("request.too_large", http_status=413, limit=_size(limit)))


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else f"{n // KIB} KiB" if n % KIB == 0 else f"{n} bytes"


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


#: Health, readiness and metrics, at a service's prefix and at its root: they take no query parameters.
_PROBES = frozenset({"healthz", "readyz", "metrics", "healthz_root", "readyz_root", "metrics_root"})


def refuse_query() -> Response | None:
    """For a route that takes no query parameters and has no schema to say so (the health, readiness and
    metrics probes, in every process and in the embedded root): a 422 problem naming each parameter
    sent, else None."""
    return _unknown_query(sorted(set(request.args))) if request.args else None


def _unknown_query(names: list[str]) -> Response:
    return problem(422, "Unprocessable Entity",
                   say("request.unknown_query", caller_language(), names=", ".join(names)),
                   code="request.unknown_query",
                   errors=[{"field": n, "detail": "Unknown query parameter: this operation takes none."}
                           for n in names])


def _api_view(app: Flask, endpoint: str | None, method: str):
    """The function that answers ``method`` at ``endpoint`` when it is an operation of the OpenAPI
    (a flask-smorest view), else None (health, metrics, docs, static files)."""
    view = app.view_functions.get(endpoint) if endpoint else None
    view_class = getattr(view, "view_class", None)
    function = getattr(view_class, method.lower(), None) if view_class else view
    if method == "HEAD" and function is None and view_class is not None:
        function = getattr(view_class, "get", None)
    return function if function is not None and hasattr(function, "_apidoc") else None


#: The media type of each body location an operation declares (flask-smorest's ``location``).
LOCATION_TYPES = {"json": "application/json", "files": "multipart/form-data", "form": "multipart/form-data"}


@dataclass(frozen=True)
class _Operation:
    """What ``create_app``'s request checks need of the view at one endpoint and method, read once:
    the flask-smorest view (``_api_view``, None outside the OpenAPI), its ``access`` action, the body
    types it takes (``_body_types``) and whether it parses a query string (``_parses_query``)."""

    view: Callable | None
    access: str | None
    body_types: frozenset[str] | set[str]
    parses_query: bool

    @classmethod
    def of(cls, view) -> _Operation:
        return cls(view, getattr(view, "_access", None) if view is not None else None, _body_types(view),
                   view is not None and _parses_query(view))


def _body_types(function) -> frozenset[str] | set[str]:
    """The media types a body may have for ``function`` (``_api_view``): those of the body locations it
    declares — a JSON operation takes application/json only, so a form or multipart body is 415, not a
    misleading "missing field" — or ``BODY_TYPES`` for a view outside the OpenAPI (Open311's forms)."""
    parameters = function._apidoc.get("arguments", {}).get("parameters", []) if function is not None else []
    declared = {LOCATION_TYPES[p["in"]] for p in parameters if isinstance(p, dict) and p.get("in") in LOCATION_TYPES}
    return frozenset(declared) if declared else BODY_TYPES


def _parses_query(function) -> bool:
    """Whether the operation declares query arguments (whose schema then refuses unknown names)."""
    parameters = function._apidoc.get("arguments", {}).get("parameters", [])
    return any(p.get("in") in ("query", "querystring") for p in parameters if isinstance(p, dict))


class SecureHeaders:
    """WSGI middleware: ``SECURITY_HEADERS`` on every response that does not set them itself, and
    ``Cache-Control: no-store`` on every answer to a request with an ``Authorization`` header (what
    it returns is someone's cases and reports; no shared or browser cache may keep it)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        personal = bool(environ.get("HTTP_AUTHORIZATION"))

        def start(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers}
            headers = list(headers) + [(k, v) for k, v in SECURITY_HEADERS.items() if k.lower() not in present]
            if personal:
                headers = [(k, v) for k, v in headers if k.lower() not in ("cache-control", "expires")]
                headers.append(("Cache-Control", "no-store"))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, start)


def problem_bytes(status: int, detail: str = "") -> bytes:
    """A problem document outside Flask (servers' own refusals: 414, 431, 400 before any app runs)."""
    body = {"type": "about:blank", "title": http.HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = printable(detail, 500)
    return json.dumps(body).encode()


class ProblemRequestHandler(WSGIRequestHandler):
    """The embedded server's request handler: the limits of ``REQUEST_LINE_LIMIT``,
    ``HEADER_FIELDS_LIMIT`` and ``HEADER_FIELD_SIZE_LIMIT`` (as gunicorn's), its own refusals
    (400, 414, 431…) as problem+json, and ``Server: gridcase`` without software versions."""

    def version_string(self) -> str:
        return "gridcase"

    def parse_request(self) -> bool:
        if len(self.raw_requestline.rstrip(b"\r\n")) > REQUEST_LINE_LIMIT:
            self.command, self.request_version, self.requestline = "", "HTTP/1.1", ""
            self.send_error(414, None, f"the request line is over {REQUEST_LINE_LIMIT} bytes")
            return False
        if not super().parse_request():
            return False
        if len(self.headers) > HEADER_FIELDS_LIMIT:
            self.send_error(431, None, f"more than {HEADER_FIELDS_LIMIT} header fields")
            return False
        for name, value in self.headers.items():
            if len(name) + len(value) + 2 > HEADER_FIELD_SIZE_LIMIT:
                self.send_error(431, None, f"the header {printable(name, 60)} is over {HEADER_FIELD_SIZE_LIMIT} bytes")
                return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        detail = explain or message or ""
        if code == 431 and "Too many headers" in detail:
            detail = f"more than {HEADER_FIELDS_LIMIT} header fields"
        elif code == 431:
            detail = detail or f"a header field is over {HEADER_FIELD_SIZE_LIMIT} bytes"
        body = problem_bytes(code, detail)
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, http.HTTPStatus(code).phrase)
        self.send_header("Content-Type", PROBLEM)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def make_embedded_server(host: str, port: int, app):
    """The embedded ``gridcase up`` server: werkzeug's threaded server with ``ProblemRequestHandler``
    and ``SecureHeaders`` around ``app`` (``port`` 0: any free port, see ``server.server_port``)."""
    return make_server(host, port, SecureHeaders(app), threaded=True, request_handler=ProblemRequestHandler)


def _write_gunicorn_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's refusals (its ``util.write_error``: 400, 414, 431…) as problem+json."""
    from gunicorn import util

    body = problem_bytes(status_int, mesg)
    head = [f"HTTP/1.1 {status_int} {reason}", "Connection: close", f"Content-Type: {PROBLEM}",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in SECURITY_HEADERS.items())]
    util.write_nonblock(sock, ("\r\n".join(head) + "\r\n\r\n").encode("latin1") + body)


def gunicorn_post_worker_init(worker) -> None:
    """gunicorn hook (``post_worker_init``): answer the worker's own refusals as problem+json."""
    from gunicorn import util

    util.write_error = _write_gunicorn_problem


#: gunicorn settings every gridcase API process uses (``gridcase serve`` and deploy/gunicorn.conf.py).
GUNICORN_SETTINGS = {"limit_request_line": REQUEST_LINE_LIMIT, "limit_request_fields": HEADER_FIELDS_LIMIT,
                     "limit_request_field_size": HEADER_FIELD_SIZE_LIMIT,
                     "post_worker_init": gunicorn_post_worker_init}


def readiness_failures(checks: dict[str, Callable[[], None]]) -> dict[str, str]:
    """Run each readiness check; the failed ones by name, with the reason."""
    failures = {}
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:
            failures[name] = str(exc)[:200]
    return failures


def metrics_response(multiprocess_dir: str | None = None) -> Response:
    """Prometheus text; under gunicorn with several workers (``multiprocess_dir`` set), the sum over all."""
    registry = None
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry) if registry else generate_latest(), content_type=CONTENT_TYPE_LATEST)


def identity() -> Identity:
    """The caller, from the bearer token (``shared.auth.TokenVerifier``); 401 without a valid one."""
    if "identity" in g:
        return g.identity
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _refuse_token(Problem("request.token_required", http_status=401, headers={"WWW-Authenticate": "Bearer"}))
    try:
        g.identity = current_app.config["GRIDCASE_TOKENS"].read(token.strip())
    except AuthError as exc:
        _refuse_token(Problem("request.token_invalid", http_status=401, headers={"WWW-Authenticate": "Bearer"},
                              reason=exc.message))
    return g.identity


def _refuse_token(refusal: Problem):
    access_log.warning("access denied", reason="unauthenticated", detail=printable(str(refusal), 300),
                       method=request.method, path=printable(request.path))
    raise refusal


def access(action: str):
    """Decorator naming the ``shared.access`` action a view performs. The role check (401 without a
    valid token, 403 for a role that may never take the action) runs in ``create_app``'s
    ``before_request``, before the query string or body is looked at, and again when the view runs.
    Put it above ``@blp.arguments``."""
    ACTIONS[action]  # KeyError now, at import, for a misspelt action

    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            authorize(action)
            return view(*args, **kwargs)
        guarded._access = action
        return guarded
    return decorate


def lookup(action: str, code: str):
    """Decorator for a view whose handler raises ``LookupError`` for what the caller does not see (it
    does not exist, or lies outside their area): answered by ``deny`` as a 404 with the message ``code``
    (``case.not_found``…), logged as an access denial. A ``LookupError`` that is a ``Problem`` of its
    own (a merge target not found) answers as itself. Put it below ``@blp.response``."""
    def decorate(view):
        @functools.wraps(view)
        def found(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except Problem:
                raise
            except LookupError:
                deny(g.get("identity"), action, code=code)
        return found
    return decorate


def authorize(action: str, resource: Resource | None = None) -> Identity | None:
    """``shared.access.decide`` for the caller of this request: the identity (None for a public
    action), or abort — 401 (no or bad token), 403 (forbidden), 404 (outside the caller's area, as a
    missing resource). Every denial is logged with who, what and why."""
    if ACTIONS[action] is None:
        return None
    caller = identity()
    decision = decide(caller, action, resource)
    if decision is not Decision.ALLOW:
        deny(caller, action, decision)
    return caller


def roles(*allowed: str):
    """Deprecated: name the action with ``access`` (the one policy, ``shared.access``) instead. Kept so
    that code written before it still runs; ``tests/integration/test_access_everywhere.py`` flags it."""
    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            caller = identity()
            if caller.role not in allowed:
                deny(caller, view.__name__, Decision.FORBIDDEN)
            return view(*args, **kwargs)
        return guarded
    return decorate


def deny(caller: Identity | None, action: str, decision: Decision = Decision.NOT_FOUND,
         message: str | None = None, *, code: str | None = None, **params):
    """Log the denial and answer 403 (``FORBIDDEN``) or 404 (``NOT_FOUND``: the resource is
    missing or outside the caller's area; the answer does not say which).

    ``code`` (and ``params``): the message of ``shared/words.toml`` the caller reads (default
    ``request.forbidden_role`` or ``request.no_such_resource``); ``message``: an English text instead,
    for callers that have no message key yet."""
    access_log.warning("access denied", reason=str(decision), action=action, method=request.method,
                       path=printable(request.path), user=caller.user if caller else None,
                       role=caller.role if caller else None, area=caller.area if caller else None)
    status = 403 if decision is Decision.FORBIDDEN else 404
    if message is not None and code is None:
        abort(status, message=message)
    if code is None and status == 403:
        code, params = "request.forbidden_role", {"role": caller.role if caller else "anonymous", "action": action}
    raise Problem(code or "request.no_such_resource", http_status=status, **params)
