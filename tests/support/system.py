"""Running gridcase as real processes for end-to-end tests, and talking to it over real HTTP. The processes,
their ports and logs are harness.processes'."""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from shapely.geometry import shape

from harness.processes import GRIDCASE, ROOT, Processes, token, wait_for  # noqa: F401 (ROOT, token: for the tests)
from harness.servers import consumer_count


@contextmanager
def embedded_system(data: Path, *args: str, env: dict | None = None):
    """`gridcase up` on a port it picks itself (``--port 0``) with its data in ``data``; yields the base URL
    it announces once /readyz is 200."""
    processes = Processes(data)
    processes.gridcase("up", ["up", "--port", "0", "--data-dir", str(data), *args], env)
    try:
        base = processes.announced("up", r"gridcase is up at (http://\S+)", timeout=90).group(1)
        processes.wait_ready("up", f"{base}/readyz", timeout=90)
        yield base
    finally:
        processes.stop_all()


def auth(token_: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token_}", **headers}


def a_point_in_grid(base: str, admin: str, index: int = 0) -> tuple[str, float, float]:
    """A grid of the active hierarchy and a point inside it: (grid id, lon, lat)."""
    answer = requests.get(f"{base}/dispatch/v1/areas", params={"level": "grid", "simplify": "false"},
                          headers=auth(admin), timeout=30)
    assert answer.status_code == 200, f"the areas: {answer.status_code} {answer.text[:500]}"
    feature = answer.json()["features"][index]
    point = shape(feature["geometry"]).representative_point()
    return feature["properties"]["id"], point.x, point.y


def report_at_level(base: str, report_id: str, token_: str, level: int, timeout: float = 5.0) -> dict:
    """Poll intake until its report shows ``level`` (intake follows the other services asynchronously);
    returns the last report seen, at that level or not."""
    deadline = time.monotonic() + timeout
    while True:
        report = requests.get(f"{base}/intake/v1/reports/{report_id}", headers=auth(token_), timeout=5).json()
        if report.get("level") == level or time.monotonic() > deadline:
            return report
        time.sleep(0.02)


def wait_for_case(base: str, case_id: str, token_: str, timeout: float = 5.0) -> tuple[dict, float]:
    """Poll escalation until the case has arrived; returns (case, seconds it took)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        response = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(token_), timeout=5)
        if response.status_code == 200:
            return response.json(), time.monotonic() - started
        assert response.status_code == 404, response.text
        time.sleep(0.02)
    raise AssertionError(f"case {case_id} did not reach escalation within {timeout}s")


def consumers(url: str, queue: str) -> int:
    try:
        return consumer_count(url, queue)
    except Exception:  # not declared yet
        return 0


class Production:
    """The production topology as plain processes: three gunicorn APIs, each service's worker and the
    scheduler, on RabbitMQ and one PostgreSQL database per service, with a generated city imported."""

    def __init__(self, data: Path, broker_url: str, database_urls: dict[str, str], env: dict | None = None,
                 web_workers: dict[str, int] | None = None):
        import uuid

        self.data = data
        self.broker_url = broker_url
        self.env = {"GRIDCASE_BROKER_URL": broker_url, "GRIDCASE_SECRET": "e2e-" + uuid.uuid4().hex * 2,
                    **{f"GRIDCASE_{s.upper()}_DATABASE_URL": url for s, url in database_urls.items()}, **(env or {})}
        self.processes = Processes(data)
        self.urls: dict[str, str] = {}
        self.web_workers = web_workers or {}  # service → gunicorn worker processes (default 1)

    def start(self, departments: Path | None = None) -> Production:
        """Import the city (and ``departments``, a departments file, when given), then start every process."""
        from services.dispatch.citygen import generate_city, write_city

        city = self.data / "city"
        write_city(generate_city(grids=200, stations=12, subcenters=3), city)
        args = ["areas", "import", "--data-dir", str(self.data)]
        for level in ("hq", "subcenter", "station", "grid"):
            args += ["--level", level, str(city / f"{level}.geojson")]
        self.processes.run("import", GRIDCASE + args, self.env, timeout=120)
        if departments is not None:
            self.processes.run("departments", GRIDCASE + ["departments", "import", str(departments), "--data-dir",
                                                          str(self.data)], self.env, timeout=120)
        for service in ("intake", "dispatch", "escalation"):
            self.urls[service] = self.processes.serve(
                f"serve-{service}", GRIDCASE + ["serve", service, "--workers", str(self.web_workers.get(service, 1)),
                                                "--data-dir", str(self.data)],
                self.env)
            self.start_worker(service)
        self.start_worker("scheduler")
        self.start_worker("notify")
        for service, url in self.urls.items():
            self.processes.wait_ready(f"serve-{service}", f"{url}/{service}/readyz", timeout=60)
        for queue in ("gridcase.dispatch.locate", "gridcase.escalation.open"):
            wait_for(lambda q=queue: consumers(self.broker_url, q) > 0, timeout=60, message=f"a consumer on {queue}",
                     watch=self.processes)
        return self

    def start_worker(self, name: str, **env) -> subprocess.Popen:
        return self.processes.gridcase(f"worker-{name}", ["worker", name, "--data-dir", str(self.data)],
                                       {**self.env, **env})

    def token(self, role: str, **claims) -> str:
        return token(self.data, role, env=self.env, **claims)


def required_server(name: str) -> str:
    """The URL of a test server from the environment; without one the test skips with a reason —
    except under ``CI=true``, where a missing server is a failure, never a skip."""
    url = os.environ.get(name)
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not set: CI must run this tier against a real server")
    pytest.skip(f"{name} not set (no server): run `make test`, which starts one")


@contextmanager
def database_url(kind: str, folder: Path, name: str):
    """A fresh database for a service under test: ``kind`` ``sqlite`` (a file ``name``.db in ``folder``) or
    ``postgres`` (a database of its own on the test server, dropped afterwards); yields its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{folder}/{name}.db"
        return
    from harness.servers import create_database, drop_database

    admin, database = required_server("GRIDCASE_TEST_POSTGRES_URL"), f"gridcase_{name}_{uuid.uuid4().hex[:10]}"
    try:
        yield create_database(admin, database)
    finally:
        drop_database(admin, database)
