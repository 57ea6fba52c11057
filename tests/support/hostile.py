"""The two systems every hostile-input test runs against, and what those tests check after each input.

- ``sqlite``: `gridcase up` (embedded: SQLite files, in-memory bus, werkzeug's server);
- ``postgres``: the production topology (gunicorn APIs, workers, RabbitMQ, one PostgreSQL database per
  service), whose ``VARCHAR(n)`` and NUL rules SQLite does not have.

A test module takes the ``target`` fixture made by ``target_fixture()``; each input is then answered by
both. ``Target.counts()`` reads the rows that an accepted input would have added, straight from each
service's database, so a test can assert that a refused input stored nothing.
"""
from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import requests
import sqlalchemy as sa

from harness.servers import create_database, drop_database, purge_broker

PROBLEM = "application/problem+json"
#: Tables whose row counts must not change when an input is refused.
COUNTED = {"intake": ("reports", "outbox"), "dispatch": ("area_versions", "areas", "dispatches", "outbox"),
           "escalation": ("cases", "timeline")}


@dataclass
class Target:
    name: str
    urls: dict[str, str]
    secret: str
    database_urls: dict[str, str]
    _engines: dict[str, sa.Engine] = field(default_factory=dict)

    def url(self, service: str, path: str) -> str:
        """``path`` (``/intake/v1/reports``) on the process that serves ``service``."""
        return self.urls[service] + path

    def token(self, role: str = "admin", *, sub: str | None = None, area: str | None = None, **claims) -> str:
        """A token signed with the system's secret, with any claims at all (hostile ones included)."""
        now = datetime.now(UTC)
        body = {"sub": sub if sub is not None else f"{role}-user", "role": role, "iat": now,
                "exp": now + timedelta(hours=1), **claims}
        if area is not None:
            body["area"] = area
        return jwt.encode(body, self.secret, algorithm="HS256")

    def auth(self, role: str = "admin", **claims) -> dict:
        return {"Authorization": f"Bearer {self.token(role, **claims)}"}

    def counts(self, timeout: float = 20.0) -> dict[str, int]:
        """Rows in every ``COUNTED`` table, as ``{"intake.reports": 3, ...}``, once the system is at rest:
        every accepted report has reached dispatch and escalation (a sent message may still sit in the
        broker or a consumer's batch, so an empty outbox alone proves nothing), every outbox row is sent,
        and two readings in a row are equal."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            now, unsent = self._read()
            arrived = now["intake.reports"] == now["dispatch.dispatches"] == now["escalation.cases"]
            if arrived and now == last and unsent == 0:
                return now
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: the system did not come to rest: {now}, {unsent} unsent")
            last = now
            time.sleep(0.1)

    def _read(self) -> tuple[dict[str, int], int]:
        out, unsent = {}, 0
        for service, tables in COUNTED.items():
            engine = self._engines.get(service)
            if engine is None:
                engine = self._engines[service] = sa.create_engine(
                    self.database_urls[service].replace("postgresql://", "postgresql+psycopg://", 1),
                    poolclass=sa.pool.NullPool)
            with engine.connect() as db:
                for table in tables:
                    out[f"{service}.{table}"] = db.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                unsent += db.execute(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")).scalar_one()
        return out, unsent

    def ready(self) -> bool:
        """Whether every service answers ``/readyz`` with 200."""
        return all(requests.get(self.url(s, f"/{s}/readyz"), timeout=10).status_code == 200 for s in self.urls)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()


def _embedded(stack: ExitStack, data: Path) -> Target:
    from tests.support.system import embedded_system

    secret = "hostile-" + uuid.uuid4().hex * 2
    base = stack.enter_context(embedded_system(data, env={"GRIDCASE_SECRET": secret}))
    urls = {s: base for s in ("intake", "dispatch", "escalation")}
    return Target("sqlite", urls, secret, {s: f"sqlite:///{data / f'{s}.db'}" for s in urls})


def _production(stack: ExitStack, data: Path) -> Target:
    from tests.support.system import Production, required_server

    broker_url = required_server("GRIDCASE_TEST_BROKER_URL")
    admin_url = required_server("GRIDCASE_TEST_POSTGRES_URL")
    purge_broker(broker_url)
    names = {s: f"gridcase_hostile_{s}_{uuid.uuid4().hex[:8]}" for s in ("intake", "dispatch", "escalation")}
    urls = {}
    for service, name in names.items():
        urls[service] = create_database(admin_url, name)
        stack.callback(drop_database, admin_url, name)
    system = Production(data, broker_url, urls)
    stack.callback(system.processes.stop_all)
    system.start()
    return Target("postgres", dict(system.urls), system.env["GRIDCASE_SECRET"], urls)


def target_fixture():
    """A module-scoped ``target`` fixture: each test of the module runs on SQLite, then on PostgreSQL."""

    @pytest.fixture(scope="module", params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres, pytest.mark.rabbitmq])])
    def target(request, tmp_path_factory):
        with ExitStack() as stack:
            data = tmp_path_factory.mktemp(f"hostile-{request.param}")
            made = _embedded(stack, data) if request.param == "sqlite" else _production(stack, data)
            stack.callback(made.close)
            yield made

    return target


def assert_problem(response: requests.Response, status: int, field_name: str | None = None) -> dict:
    """``response`` is an RFC 9457 problem with ``status`` that, when ``field_name`` is given, names
    that field in its ``errors``; returns the problem."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith(PROBLEM), response.headers["Content-Type"]
    body = response.json()
    assert body["status"] == status
    if field_name is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field_name in fields, (field_name, body)
    return body
