"""The cluster tier: gridcase on a 3-node RabbitMQ cluster and a PostgreSQL primary + standby with automatic
failover (``deploy/local/cluster.sh``), with nodes killed under load.

It runs only when asked (``make test-cluster``, which sets ``GRIDCASE_TEST_CLUSTER=1``; ``.ci/run`` runs it
after ``make test``): otherwise every test here skips with that reason, so ``make test`` stays as fast as it
was. Asked for, a missing package is a failure, never a skip. ``GRIDCASE_TEST_CLUSTER_DIR`` names a cluster
already started with ``cluster.sh start DIR`` (kept running afterwards); without it the session starts one
under a temporary directory and stops it at the end (its logs are kept when a test failed).

Each test's measured outage is printed at the end of the run (``outages``)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "deploy" / "local" / "cluster.sh"
SERVICES = ("intake", "dispatch", "escalation")

#: (what, seconds) measured by the tests, printed in the terminal summary
outages: list[tuple[str, float]] = []


def asked() -> bool:
    return os.environ.get("GRIDCASE_TEST_CLUSTER") == "1" or bool(os.environ.get("GRIDCASE_TEST_CLUSTER_DIR"))


def pytest_collection_modifyitems(config, items):
    if asked():
        return
    skip = pytest.mark.skip(reason="cluster tier: run `make test-cluster` (GRIDCASE_TEST_CLUSTER=1); it starts a "
                                   "3-node RabbitMQ cluster and PostgreSQL with failover (deploy/local/cluster.sh)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if outages:
        terminalreporter.section("measured outages (cluster tier)")
        for what, seconds in outages:
            terminalreporter.write_line(f"{what:<60} {seconds:6.1f} s")


def parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class Cluster:
    """The printed settings of a running cluster, and its faults (``cluster.sh kill|revive``)."""

    def __init__(self, directory: Path, env: dict[str, str]):
        self.directory = directory
        self.env = env
        self.broker_url = env["GRIDCASE_BROKER_URL"]
        self.admin_url = env["GRIDCASE_CLUSTER_POSTGRES_ADMIN_URL"]

    def run(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"cluster.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout

    def kill(self, kind: str, n: int) -> None:
        self.run("kill", str(self.directory), kind, str(n))

    def revive(self, kind: str, n: int) -> None:
        self.run("revive", str(self.directory), kind, str(n))

    def cut(self, n: int) -> None:
        """Cut RabbitMQ node ``n`` off the network (its namespace's cable down: packets dropped, nothing closed)."""
        self.run("cut", str(self.directory), str(n))

    def heal(self, n: int) -> None:
        self.run("heal", str(self.directory), str(n))

    def no_partitions(self) -> str | None:
        """Why this cluster's RabbitMQ nodes cannot be cut off (no namespaces of their own), or None."""
        refused = self.directory / "rabbitmq" / "netns-refused"
        if refused.exists():
            return refused.read_text().strip() or "no network namespaces"
        if not (self.directory / "rabbitmq" / "network").exists():
            return "the cluster was started without network namespaces"
        return None

    def rabbitmq_running(self, n: int) -> list[str]:
        """The RabbitMQ nodes node ``n`` sees running (itself included)."""
        out = self.rabbitmq_ctl(n, "eval", "rabbit_nodes:all_running().")
        return re.findall(r"'([^']+)'", out)

    def rabbitmq_ctl(self, n: int, *args: str) -> str:
        done = subprocess.run([str(ROOT / "deploy/local/rabbitmq.sh"), "ctl",
                               str(self.directory / "rabbitmq" / f"node{n}"), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def rabbitmq_node(self, name: str) -> int:
        """The number (1-3) of the RabbitMQ node called ``rabbit-PORT@HOST``."""
        port = name.split("@")[0].rsplit("-", 1)[1]
        for n, node in enumerate(self.broker_url.split(";"), start=1):
            if f":{port}/" in node:
                return n
        raise AssertionError(f"{name} is not a node of {self.broker_url}")

    def postgres_hosts(self) -> list[str]:
        """host:port of each PostgreSQL data node, node 1 first."""
        return [h.split("host=", 1)[1] for h in self.env["GRIDCASE_INTAKE_DATABASE_URL"].split("?", 1)[1].split("&")
                if h.startswith("host=")]

    def postgres_primary(self) -> int | None:
        """The number (1-2) of the data node that takes writes now, if any."""
        for n, host in enumerate(self.postgres_hosts(), start=1):
            address, port = host.split(":")
            try:
                with psycopg.connect(host=address, port=port, user="postgres", dbname="postgres",
                                     connect_timeout=2) as connection:
                    if not connection.execute("select pg_is_in_recovery()").fetchone()[0]:
                        return n
            except psycopg.OperationalError:
                continue
        return None

    def alive_rabbitmq(self, n: int) -> bool:
        base = self.directory / "rabbitmq" / f"node{n}"
        done = subprocess.run([str(ROOT / "deploy/local/rabbitmq.sh"), "ctl", str(base), "status"],
                              capture_output=True, timeout=60)
        return done.returncode == 0

    def postgres_standby_ready(self, n: int) -> bool:
        """Data node ``n`` answers and is a standby that replays from the primary."""
        address, port = self.postgres_hosts()[n - 1].split(":")
        try:
            with psycopg.connect(host=address, port=port, user="postgres", dbname="postgres",
                                 connect_timeout=2) as connection:
                return connection.execute("select pg_is_in_recovery() and pg_last_wal_receive_lsn() is not null"
                                          ).fetchone()[0]
        except psycopg.OperationalError:
            return False

    def databases(self) -> dict[str, str]:
        """A fresh database per service on the cluster (SQLAlchemy URLs listing both data nodes)."""
        hosts = "&".join(f"host={h}" for h in self.postgres_hosts())
        urls = {}
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            for service in SERVICES:
                name = f"gridcase_{service}_{uuid.uuid4().hex[:10]}"
                connection.execute(f'CREATE DATABASE "{name}"')
                urls[service] = f"postgresql+psycopg://postgres@/{name}?{hosts}"
        return urls


@pytest.fixture(scope="session")
def cluster():
    given = os.environ.get("GRIDCASE_TEST_CLUSTER_DIR")
    if given:
        directory = Path(given)
        done = subprocess.run([str(CLUSTER_SH), "env", given], capture_output=True, text=True, check=True)
        yield Cluster(directory, parse_env(done.stdout))
        return
    for program in ("pg_autoctl", "epmd"):
        if not shutil.which(program):
            pytest.fail(f"{program} not found: the cluster tier needs rabbitmq-server, postgresql-15-auto-failover "
                        "and pg-auto-failover-cli (.ci/run installs them)")
    directory = Path(tempfile.mkdtemp(prefix="gridcase-cluster-"))
    directory.chmod(0o755)
    started = subprocess.run([str(CLUSTER_SH), "start", str(directory)], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        pytest.fail(f"cluster.sh start failed:\n{started.stderr[-4000:]}")
    cluster = Cluster(directory, parse_env(started.stdout))
    failed_before = _failures()
    try:
        yield cluster
    finally:
        subprocess.run([str(CLUSTER_SH), "stop", str(directory)], capture_output=True, timeout=300)
        if _failures() == failed_before:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print(f"\ncluster logs kept in {directory}")


_failed = {"count": 0}


def _failures() -> int:
    return _failed["count"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        _failed["count"] += 1


@pytest.fixture
def system(tmp_path, cluster):
    """gridcase as production runs it (tests.support.system.Production) on the cluster, every node listed."""
    from tests.support.system import Production

    production = Production(tmp_path, cluster.broker_url, cluster.databases())
    try:
        yield production.start()
    finally:
        production.processes.stop_all()
