"""The embedded system: all three services in one process, on SQLite and the in-memory bus.

One WSGI application routes by the first path segment to each service's own Flask app, exactly as
the production gateway routes by prefix; consumers, relays and the scheduler run as threads.
"""
from __future__ import annotations

import http.client
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True)
class ActiveCity:
    """The area version dispatch routes by: its id, grid count, when it was imported (UTC) and by what."""
    version: int
    grids: int
    imported: datetime
    source: str


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

    def active_city(self) -> ActiveCity | None:
        """The active area version (read from dispatch's database), or None before the first import."""
        with self.services["dispatch"].uow() as uow:
            row = next((v for v in uow.store.versions() if v.active), None)
        if row is None:
            return None
        return ActiveCity(row.id, int(row.summary.get("grid", 0)), row.activated_at or row.created_at, row.source)

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



def wait_until_ready(address: tuple, timeout: float = 60.0) -> None:
    """Ask ``/readyz`` over HTTP at the server's own bound ``address`` ((host, port, …), as
    ``server.server_address``; a wildcard host is asked on loopback) every 50 ms until it answers 200: the
    server then accepts and answers requests. ``click.ClickException`` with the last answer after
    ``timeout`` seconds."""
    import click

    host, port = address[0], address[1]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection(host, port, timeout=5)  # no proxy from the environment
        try:
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            last = f"{response.status} {response.read(500).decode(errors='replace')}"
            if response.status == 200:
                return
        except OSError as exc:
            last = str(exc)
        finally:
            connection.close()
        if time.monotonic() >= deadline:
            raise click.ClickException(f"not ready after {timeout:g} s: /readyz answered {last}")
        time.sleep(0.05)


def print_whole(text: str) -> None:
    """Write ``text`` to stdout in one write, holding the log handlers' locks meanwhile: no log line of
    this process lands inside it, whether stdout and stderr go to one file, a pipe (where a write over
    4 KiB is not atomic) or a terminal. A log line waits for the flush; none is lost."""
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.acquire()
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    finally:
        for handler in reversed(handlers):
            handler.release()
