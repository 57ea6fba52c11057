"""The embedded system: all three services in one process, on SQLite and the in-memory bus.

One WSGI application routes by the first path segment to each service's own Flask app, exactly as
the production gateway routes by prefix; consumers, relays and the scheduler run as threads.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from gridcase import cities
from services.dispatch import bootstrap as dispatch
from services.escalation import bootstrap as escalation
from services.intake import bootstrap as intake
from shared.bootstrap import Service
from shared.config import Settings
from shared.runtime import Runner
from shared.web import metrics_response, problem, readiness_failures, refuse_query

log = logging.getLogger("gridcase")
PREFIXES = {"intake": "intake", "open311": "intake", "dispatch": "dispatch", "escalation": "escalation",
            "app": "intake", "board": "escalation", "desk": "escalation", "wall": "escalation"}  # from app: pages


class System:
    def __init__(self, settings: Settings):
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.services: dict[str, Service] = {
            s.name: s for s in (intake.build(settings), dispatch.build(settings), escalation.build(settings))}
        self.runner = Runner()
        self.root = self._root_app()

    def start_workers(self) -> None:
        self.runner.start_all(list(self.services.values()))

    def stop(self) -> None:
        self.runner.stop()
        for service in self.services.values():
            service.engine.dispose()

    def __call__(self, environ, start_response):
        first = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
        target = PREFIXES.get(first)
        app = self.services[target].app if target else self.root
        return app(environ, start_response)

    def ensure_city(self, city: str) -> int | None:
        """Import the city on first start; returns the new version, or None if one is active."""
        return cities.ensure_city(self.services["dispatch"], city)

    def _root_app(self) -> Flask:
        app = Flask("gridcase")
        app.json.ensure_ascii = False
        app.register_error_handler(HTTPException, lambda e: problem(e.code, e.name, e.description))
        app.before_request(refuse_query)  # the index and the probes take no query parameters

        @app.get("/")
        def index():
            return {"service": "gridcase", "apis": {name: f"/{name}/openapi.json" for name in self.services},
                    "pages": {"grid worker": "/app/", "command center": "/board/", "supervisor": "/desk/",
                              "wall screen": "/wall/"},
                    "health": "/healthz", "ready": "/readyz", "metrics": "/metrics"}

        @app.get("/healthz")
        def healthz():
            return {"status": "ok"}

        @app.get("/readyz")
        def readyz():
            problems = {name: failures for name, service in self.services.items()
                        if (failures := readiness_failures(service.app.config["GRIDCASE_READINESS"]))}
            try:
                self.runner.alive()
            except RuntimeError as exc:
                problems["workers"] = str(exc)
            if problems:
                response = jsonify({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                                    "detail": "not every service is ready", "services": problems})
                response.status_code, response.mimetype = 503, "application/problem+json"
                return response
            return {"status": "ready", "services": sorted(self.services)}

        app.add_url_rule("/metrics", "metrics", lambda: metrics_response(self.settings.metrics_dir))

        return app

