"""Running gridcase as real processes for end-to-end tests, and talking to it over real HTTP."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parents[2]
GRIDCASE = [sys.executable, "-m", "gridcase"]


class Processes:
    """Started processes, each logging to a file, all stopped at the end of the test."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        process = subprocess.Popen(GRIDCASE + args, cwd=ROOT, env={**os.environ, **env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = process
        return process

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        process = self.running.pop(name)
        os.killpg(process.pid, sig)
        process.wait(20)

    def stop_all(self) -> None:
        """SIGTERM to every process first (they stop in parallel), then SIGKILL whatever is left after 15 s."""
        running = [p for p in self.running.values() if p.poll() is None]
        self.running.clear()
        for process in running:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.wait(5)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-4000:]


@contextmanager
def embedded_system(data: Path, *args: str, env: dict | None = None):
    """`gridcase up` on a free port with its data in ``data``; yields the base URL once /readyz is 200."""
    from tests.support.servers import free_port

    port = free_port()
    processes = Processes(data)
    process = processes.start("up", ["up", "--port", str(port), "--data-dir", str(data), *args], env or {})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", timeout=90, process=process)
        yield base
    finally:
        processes.stop_all()


def _signal(process: subprocess.Popen, sig) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def wait_ready(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} was ready")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s")


def token(data_dir: Path, role: str, env: dict | None = None, **claims) -> str:
    args = ["token", "--role", role, "--data-dir", str(data_dir)]
    for key, value in claims.items():
        args += [f"--{key}", value]
    out = subprocess.run(GRIDCASE + args, cwd=ROOT, env={**os.environ, **(env or {})}, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def auth(token_: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token_}", **headers}


def a_point_in_grid(base: str, admin: str, index: int = 0) -> tuple[str, float, float]:
    """A grid of the active hierarchy and a point inside it: (grid id, lon, lat)."""
    grids = requests.get(f"{base}/dispatch/v1/areas", params={"level": "grid", "simplify": "false"},
                         headers=auth(admin), timeout=30).json()["features"]
    feature = grids[index]
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
    from tests.support.servers import consumer_count

    try:
        return consumer_count(url, queue)
    except Exception:  # not declared yet
        return 0


class Production:
    """The production topology as plain processes: three gunicorn APIs, each service's worker and the
    scheduler, on RabbitMQ and one PostgreSQL database per service, with a generated city imported."""

    def __init__(self, data: Path, broker_url: str, database_urls: dict[str, str]):
        import uuid

        self.data = data
        self.broker_url = broker_url
        self.env = {"GRIDCASE_BROKER_URL": broker_url, "GRIDCASE_SECRET": "e2e-" + uuid.uuid4().hex * 2,
                    **{f"GRIDCASE_{s.upper()}_DATABASE_URL": url for s, url in database_urls.items()}}
        self.processes = Processes(data)
        self.urls: dict[str, str] = {}

    def start(self) -> Production:
        from services.dispatch.citygen import generate_city, write_city
        from tests.support.messaging import wait_for
        from tests.support.servers import free_port

        city = self.data / "city"
        write_city(generate_city(grids=200, stations=12, subcenters=3), city)
        args = ["areas", "import", "--data-dir", str(self.data)]
        for level in ("hq", "subcenter", "station", "grid"):
            args += ["--level", level, str(city / f"{level}.geojson")]
        assert self.processes.start("import", args, self.env).wait(120) == 0, self.processes.log("import")
        for service in ("intake", "dispatch", "escalation"):
            port = free_port()
            self.urls[service] = f"http://127.0.0.1:{port}"
            self.processes.start(f"serve-{service}", ["serve", service, "--port", str(port), "--workers", "1",
                                                      "--data-dir", str(self.data)], self.env)
            self.start_worker(service)
        self.start_worker("scheduler")
        for service, url in self.urls.items():
            wait_ready(f"{url}/{service}/readyz", timeout=60, process=self.processes.running[f"serve-{service}"])
        for queue in ("gridcase.dispatch.locate", "gridcase.escalation.open"):
            wait_for(lambda q=queue: consumers(self.broker_url, q) > 0, timeout=60, message=f"a consumer on {queue}")
        return self

    def start_worker(self, name: str, **env) -> subprocess.Popen:
        return self.processes.start(f"worker-{name}", ["worker", name, "--data-dir", str(self.data)],
                                    {**self.env, **env})

    def token(self, role: str, **claims) -> str:
        return token(self.data, role, env=self.env, **claims)
