"""The pipeline on the 3-node cluster beside the single node: cases/s from intake's outbox to level 1 in
escalation, on one RabbitMQ node + one PostgreSQL (``make bench``'s servers), and on the cluster of
``deploy/local/cluster.sh`` (three RabbitMQ nodes, every one listed in the broker URL, quorum queues
replicated on all three; a PostgreSQL primary whose commits wait for its synchronous standby).

    python -m benchmarks.cluster_pipeline [--quick]

Method, the same on each (``benchmarks.pipeline``'s throughput run): fresh databases, a generated city
(1,500 grids) imported, ``gridcase worker intake|dispatch|escalation`` started (one each) and warmed up by
one report; then N reports (5,000; ``--quick`` 500) and their ``case.reported`` outbox rows are written in
ONE transaction, and cases/s = N ÷ (the last case's ``opened_at`` − that commit). The single node runs
first, then the cluster is started (not timed) and the same is done on it. Ratio = cluster ÷ single.

Everything runs on this one machine: the cluster's three RabbitMQ nodes and two PostgreSQL servers share
its cores with the workers, so the ratio is the price of replication (every message on three nodes, every
commit on two), not what separate machines would give.
"""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa

from benchmarks import pipeline
from benchmarks._support import ROOT, Figure, Scope, note, sigterm_as_exit
from shared.db import make_engine

CLUSTER_SH = ROOT / "deploy" / "local" / "cluster.sh"
SERVICES = ("intake", "dispatch", "escalation")


def run(quick: bool = False) -> list[Figure]:
    n = 500 if quick else 5_000
    with Scope("cluster-pipeline") as scope:
        single_urls = {s: scope.database(s) for s in SERVICES}
        single = _throughput(scope, "single", scope.broker(), single_urls, n)
        note(f"single node: {n} cases at level 1 in {n / single:.2f} s")

        started = time.monotonic()
        env = _start_cluster(scope)
        note(f"cluster started in {time.monotonic() - started:.0f} s (not timed): {env['GRIDCASE_BROKER_URL']}")
        cluster_urls = _cluster_databases(env)
        clustered = _throughput(scope, "cluster", env["GRIDCASE_BROKER_URL"], cluster_urls, n)
        note(f"cluster: {n} cases at level 1 in {n / clustered:.2f} s")
    return [
        ("cluster_pipeline.single_node", round(single), "cases/s", None),
        ("cluster_pipeline.three_nodes", round(clustered), "cases/s", round(clustered / single, 3)),
    ]


def _throughput(scope: Scope, tag: str, broker: str, urls: dict[str, str], n: int) -> float:
    """Start the three workers on ``broker`` and ``urls`` (SQLAlchemy URLs), warm them up, push ``n``
    reports through; returns cases/s. The workers are stopped afterwards."""
    env = {"GRIDCASE_BROKER_URL": broker, "GRIDCASE_SECRET": "bench-" + uuid.uuid4().hex * 2,
           "GRIDCASE_LOG_LEVEL": "WARNING",
           **{f"GRIDCASE_{s.upper()}_DATABASE_URL": url for s, url in urls.items()}}
    data = scope.tmp / f"data-{tag}"
    data.mkdir()
    engines = {s: make_engine(url, pool_size=1, max_overflow=1) for s, url in urls.items()}
    procs = scope.processes
    names = [f"{tag}-worker-{s}" for s in SERVICES]
    try:
        points = _import_city(scope, env, data)
        for name, service in zip(names, SERVICES, strict=True):
            procs.gridcase(name, ["worker", service, "--data-dir", str(data)], env)
        # the intake worker has migrated its database once the table exists: then one report warms everything up
        _wait_for_table(engines["intake"], "reports", procs)
        rows, messages = pipeline._prepare_reports(engines["intake"], 1, points)
        pipeline._write_reports(engines["intake"], rows, messages)
        pipeline._wait_for_cases(engines["escalation"], 1, 180, procs)

        rows, messages = pipeline._prepare_reports(engines["intake"], n, points)
        committed = pipeline._write_reports(engines["intake"], rows, messages)
        pipeline._wait_for_cases(engines["escalation"], 1 + n, max(180.0, n / 20), procs)
        ids = [r["id"] for r in rows]
        with engines["escalation"].connect() as db:
            last = db.execute(sa.select(sa.func.max(sa.column("opened_at"))).select_from(sa.table("cases"))
                              .where(sa.column("id").in_(ids))).scalar_one()
        for name in names:
            procs.check(name)
        return n / (last.timestamp() - committed)
    finally:
        procs.stop(*names)
        for engine in engines.values():
            engine.dispose()


def _import_city(scope: Scope, env: dict, data: Path) -> list[tuple[float, float]]:
    original = scope.tmp
    scope.tmp = data  # pipeline._import_city writes the city and the import's data under scope.tmp
    try:
        return pipeline._import_city(scope, env)
    finally:
        scope.tmp = original


def _wait_for_table(engine: sa.Engine, table: str, procs) -> None:
    deadline = time.monotonic() + 120
    while not sa.inspect(engine).has_table(table):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{table} not created within 120 s")
        for name in procs.running:
            procs.check(name)
        time.sleep(0.2)


def _start_cluster(scope: Scope) -> dict[str, str]:
    directory = scope.tmp / "cluster"
    scope.tmp.chmod(0o755)  # the postgres user enters it (cluster.sh runs PostgreSQL as postgres under root)
    started = subprocess.run([str(CLUSTER_SH), "start", str(directory)], capture_output=True, text=True, timeout=300)
    scope.callback(subprocess.run, [str(CLUSTER_SH), "stop", str(directory)], capture_output=True, timeout=300)
    if started.returncode != 0:
        raise RuntimeError(f"cluster.sh start failed:\n{started.stderr[-3000:]}")
    return dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)


def _cluster_databases(env: dict[str, str]) -> dict[str, str]:
    """A database per service on the cluster's primary; SQLAlchemy URLs listing both data nodes."""
    hosts = env["GRIDCASE_INTAKE_DATABASE_URL"].split("?", 1)[1]
    urls = {}
    with psycopg.connect(env["GRIDCASE_CLUSTER_POSTGRES_ADMIN_URL"], autocommit=True) as connection:
        for service in SERVICES:
            name = f"gridcase_bench_{service}_{uuid.uuid4().hex[:8]}"
            connection.execute(f'CREATE DATABASE "{name}"')
            urls[service] = f"postgresql+psycopg://postgres@/{name}?{hosts}"
    return urls


def main() -> None:
    from benchmarks._support import emit

    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv))


if __name__ == "__main__":
    main()
