"""What every service's HTTP side shares: the app factory, RFC 9457 problems, auth, health, metrics."""
from __future__ import annotations

import functools
import http
import logging
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, jsonify, request
from flask_smorest import Api, abort
from flask_smorest.utils import prepare_response
from marshmallow import INCLUDE, Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from werkzeug.exceptions import HTTPException

from shared import logs
from shared.auth import AuthError, Identity, read_token

log = logging.getLogger("gridcase.http")
PROBLEM = "application/problem+json"
STATIC = Path(__file__).with_name("static")
BODY_TYPES = {"application/json", "multipart/form-data", "application/x-www-form-urlencoded"}
REQUESTS = Counter("gridcase_http_requests_total", "HTTP requests", ["service", "method", "status"])
LATENCY = Histogram("gridcase_http_request_seconds", "HTTP request latency", ["service"])


def problem(status: int, title: str, detail: str = "", *, errors: list | None = None,
            headers: dict | None = None, **members) -> Response:
    """An RFC 9457 problem response; ``members`` are extension members (e.g. ``findings``)."""
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(members)
    body["instance"] = request.path
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM
    response.headers.extend(headers or {})
    return response


def flatten_errors(messages, prefix: str = "") -> list[dict]:
    """``{"location": {"lon": ["Not a number."]}}`` → ``[{"field": "location.lon", "detail": ...}]``."""
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out += flatten_errors(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"field": prefix, "detail": " ".join(messages)}]
    return [{"field": prefix, "detail": str(messages)}]


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
            errors = flatten_errors(messages)
        if error.code >= 500:
            log.exception("internal error", exc_info=error.original_exception
                          if hasattr(error, "original_exception") else None)
        detail = data.get("message") or (error.description if error.code != 422 else "")
        if error.code == 422 and errors and not detail:
            detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors)
        headers = {k: v for k, v in error.get_headers() if k in self.PASSED_HEADERS}
        headers.update(data.get("headers") or {})
        return problem(error.code, error.name, detail, errors=errors, headers=headers)


def create_app(service: str, *, title: str, blueprint, readiness: dict[str, Callable[[], None]],
               details: Callable[[], dict] | None = None,
               secret: str, max_body: int = 1024 * 1024, service_object=None) -> Flask:
    # Swagger UI is served from the package (shared/static/swagger-ui, swagger-ui-dist 5): no CDN.
    app = Flask(f"gridcase.{service}", static_folder=str(STATIC), static_url_path=f"/{service}/static")
    app.config.update(
        API_TITLE=title, API_VERSION="v1", OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=f"/{service}", OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs", OPENAPI_SWAGGER_UI_URL=f"/{service}/static/swagger-ui/",
        MAX_CONTENT_LENGTH=max_body, JSON_SORT_KEYS=False,
        GRIDCASE_SECRET=secret, GRIDCASE_SERVICE=service,
    )
    app.json.ensure_ascii = False
    api = ProblemApi(app, spec_kwargs={"security": [{"bearer": []}], "components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}}})

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def _database_down(exc):
        log.warning("database unavailable: %s", exc)
        return problem(503, "Service Unavailable", "the database is unavailable; nothing was stored, retry later",
                       headers={"Retry-After": "5"})

    @app.before_request
    def _start():
        g.started = time.perf_counter()
        g.trace = logs.enter(request.headers.get("traceparent"), service=service, path=request.path)
        if request.method in ("POST", "PUT", "PATCH") and request.content_length \
                and request.mimetype not in BODY_TYPES:
            return problem(415, "Unsupported Media Type",
                           f"send application/json, not {request.mimetype or 'no content type'}")

    @app.teardown_request
    def _end(_exc):
        if "trace" in g:
            logs.leave(g.trace)

    @app.after_request
    def _count(response):
        REQUESTS.labels(service, request.method, response.status_code).inc()
        if "started" in g:
            LATENCY.labels(service).observe(time.perf_counter() - g.started)
        return response

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
    return Response(generate_latest(registry) if registry else generate_latest(), mimetype=CONTENT_TYPE_LATEST)


def identity() -> Identity:
    """The caller, from the bearer token; 401 without a valid one."""
    if "identity" in g:
        return g.identity
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        abort(401, message="a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        g.identity = read_token(current_app.config["GRIDCASE_SECRET"], token.strip())
    except AuthError as exc:
        abort(401, message=f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"})
    return g.identity


def roles(*allowed: str):
    """Decorator: 401/403 before anything else of the request (its body included) is looked at.
    Put it above ``@blp.arguments``."""
    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            require_role(*allowed)
            return view(*args, **kwargs)
        return guarded
    return decorate


def require_role(*roles: str) -> Identity:
    caller = identity()
    if caller.role not in roles:
        abort(403, message=f"role {caller.role} may not do this")
    return caller
