"""What a case leaves in PostgreSQL: rows and bytes per case in each table of each service, and the WAL
written per case (what a standby receives): ``deploy/local/with-servers.sh .venv/bin/python -m
benchmarks.case_bytes [--cases N]``.

The production processes (``tests.support.system.Production``: three APIs, each service's worker, the
scheduler, the notifier) run on the throwaway servers with the clock ``SCALE`` times faster and the
calendar-hour policy. ``N`` reports (road damage, at random points of the generated city's grids) are
posted over HTTP with an Idempotency-Key each; every case is then left unhandled until it has climbed to
headquarters and been marked overdue there: the longest life the scheduler gives a case (opened, three
escalations, the overdue mark, the warnings before each deadline). A case that is acknowledged, resolved,
verified and closed writes other steps of the same shape instead; the timeline's bytes per row let it be
counted.

Printed: a Markdown table (table, rows per case, bytes per case including its indexes and TOAST) per
database, the WAL bytes per case (``pg_current_wal_lsn`` before the first report and after the last step;
the whole server, so run it alone), and what the city's import left before the first report (subtracted)."""
from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import requests
import sqlalchemy as sa

from benchmarks._support import Scope, require_env
from harness.processes import wait_for
from shared.db import make_engine
from tests.support.system import ROOT, Production, auth

SCALE = 14400.0
POLICY = ROOT / "tests" / "support" / "calendar_hours_policy.toml"
SERVICES = ("intake", "dispatch", "escalation")


def table_sizes(url: str) -> dict[str, tuple[int, int]]:
    """table → (rows, bytes with indexes and TOAST) of a service database."""
    engine = make_engine(url)
    with engine.connect() as db:
        names = db.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        out = {}
        for name in names:
            rows = db.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar()
            size = db.execute(sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": name}).scalar()
            out[name] = (rows, size)
    engine.dispose()
    return out


def wal_lsn(admin: str) -> int:
    with psycopg.connect(admin) as connection:
        return connection.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]


def points(system: Production, admin: str, n: int) -> list[tuple[float, float]]:
    from shapely.geometry import shape

    grids = requests.get(f"{system.urls['dispatch']}/dispatch/v1/areas", params={"level": "grid", "simplify": "false"},
                         headers=auth(admin), timeout=30).json()["features"]
    rng = random.Random(5)
    chosen = [shape(rng.choice(grids)["geometry"]).representative_point() for _ in range(n)]
    return [(p.x, p.y) for p in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    args = parser.parse_args()
    admin_url = require_env("GRIDCASE_TEST_POSTGRES_URL")
    with Scope("bytes") as scope:
        urls = {service: scope.database(service) for service in SERVICES}
        system = Production(scope.tmp, scope.broker(), urls, env={
            "GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_CLOCK_ANCHOR": datetime.now(UTC).isoformat(),
            "GRIDCASE_POLICY_FILE": str(POLICY)})
        system.start()
        before = {service: table_sizes(urls[service]) for service in SERVICES}
        admin = system.token("admin")
        where = points(system, admin, args.cases)
        wal_before = wal_lsn(admin_url)
        started = time.monotonic()

        def send(i: int) -> None:
            lon, lat = where[i]
            response = requests.post(f"{system.urls['intake']}/intake/v1/reports", timeout=30, headers=auth(
                admin, **{"Idempotency-Key": f"bytes-{i}"}), json={
                "category": "road_damage", "description": f"pothole {i}", "location": {"lon": lon, "lat": lat}})
            assert response.status_code == 201, response.text

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(args.cases)))
        posted = time.monotonic() - started
        escalation = make_engine(urls["escalation"])

        def overdue() -> bool:
            with escalation.connect() as db:
                return db.execute(sa.text("SELECT count(DISTINCT case_id) FROM timeline WHERE type = 'overdue'")
                                  ).scalar() == args.cases

        wait_for(overdue, timeout=600, interval=1, message="every case overdue at headquarters",
                 watch=system.processes)
        escalation.dispose()
        time.sleep(5)  # the last steps' messages reach intake and the notifier
        wal = wal_lsn(admin_url) - wal_before
        after = {service: table_sizes(urls[service]) for service in SERVICES}
    print(f"{args.cases} cases posted in {posted:.1f} s, each climbed to headquarters and overdue\n")
    print("| database | table | rows per case | bytes per case |")
    print("|---|---|---:|---:|")
    totals = {}
    for service in SERVICES:
        total = 0
        for table, (rows, size) in sorted(after[service].items()):
            rows0, size0 = before[service].get(table, (0, 0))
            per_rows, per_bytes = (rows - rows0) / args.cases, (size - size0) / args.cases
            total += size - size0
            if per_rows or per_bytes:
                print(f"| {service} | `{table}` | {per_rows:.2f} | {per_bytes:,.0f} |")
        totals[service] = total / args.cases
    for service, per_case in totals.items():
        print(f"| {service} | all | | {per_case:,.0f} |")
    print(f"\nWAL written per case (the whole server): {wal / args.cases:,.0f} bytes")


if __name__ == "__main__":
    main()
