"""Intake benchmark: durable report accepts/s over HTTP, against a bare Flask endpoint in the same run.

    python -m benchmarks.intake [--quick]

Two servers run side by side, each ``--workers 2`` gunicorn sync workers bound on loopback:

- ``gridcase serve intake`` on a fresh PostgreSQL database (``GRIDCASE_BROKER_URL`` set, no relay worker:
  the reports' ``case.reported`` rows accumulate in the outbox, so only the HTTP accept path is measured);
- the raw baseline, ``benchmarks/_bare_flask.py``: Flask parses the JSON body and echoes it with 201, under
  the same gunicorn settings;
- the floor, the same script with ``--durable``: Flask parses the body and stores it in the same database
  with one psycopg statement in autocommit (one round trip, one WAL flush), answering its id with 201 —
  what gunicorn, Flask, psycopg and PostgreSQL cost for one durable write and nothing else. Its ratio to
  the bare echo is the most any durable accept path reaches on this machine and stack.

The same wrk command loads both (``-t2 -c32``, a Lua script posting a valid report with a grid worker's
bearer token; statuses counted per response), interleaved for several rounds, best of the rounds taken:
bare, floor, intake without an Idempotency-Key, intake with a unique Idempotency-Key per request (run, thread,
counter: the realistic phone client, which costs intake one more lookup). Any non-2xx response or socket
error makes the figure invalid (reported as ``intake.errors``). After each intake round the rows added to
``reports`` are compared with the 201s wrk saw (rows may exceed 201s by the requests in flight when wrk
stopped, at most the connection count), and the CPU per stored report of intake's gunicorn (master and
workers) and of PostgreSQL is noted.

The per-person limits' cost (``services.intake.limits``: a count in the database, a conditional upsert
per limit in a short transaction of its own): the use case ``submit_report`` run in this process on a
PostgreSQL database of its own, 2,000 reports by one grid worker with the default two limits raised out of
reach, then the same without limits (the raw baseline: an admin's reports are not counted). Figures
``intake.report_cpu_uncounted`` and ``intake.report_cpu_counted`` (CPU ms per report in this process,
best of the rounds; ratio = uncounted ÷ counted).
"""
from __future__ import annotations

import json
import sys
import time
import uuid

import sqlalchemy as sa

from benchmarks._support import Figure, Scope, cpu_seconds, emit, note, run_wrk, server_cpu_seconds, sigterm_as_exit
from harness.processes import GRIDCASE
from shared.auth import issue_token

CONNECTIONS = 32
THREADS = 2
WORKERS = 2
REPORT = {"category": "street_light", "description": "Lamp out at gate 3",
          "location": {"lon": 102.264, "lat": 27.894}}


def run(quick: bool = False) -> list[Figure]:
    seconds, rounds = (3, 1) if quick else (10, 2)
    with Scope("intake") as scope:
        database = scope.database("intake")
        env = {"GRIDCASE_INTAKE_DATABASE_URL": database, "GRIDCASE_BROKER_URL": scope.broker(),
               "GRIDCASE_SECRET": "bench-" + uuid.uuid4().hex * 2, "GRIDCASE_LOG_LEVEL": "WARNING",
               "GRIDCASE_REPORT_RATE_LIMIT": "100000000/second"}  # one bench user: no per-person limit
        token = issue_token(env["GRIDCASE_SECRET"], "grid_worker", area="G", user="bench")  # a bench city
        procs = scope.processes
        bases = {"intake": procs.serve("serve-intake", GRIDCASE + ["serve", "intake", "--workers", str(WORKERS),
                                                                   "--data-dir", str(scope.tmp)], env),
                 "bare": procs.serve("serve-bare", [sys.executable, "-m", "benchmarks._bare_flask",
                                                    "--workers", str(WORKERS)]),
                 "floor": procs.serve("serve-floor", [sys.executable, "-m", "benchmarks._bare_flask",
                                                      "--workers", str(WORKERS), "--durable", database])}
        procs.wait_ready("serve-intake", f"{bases['intake']}/intake/readyz")
        procs.wait_ready("serve-bare", f"{bases['bare']}/healthz")
        procs.wait_ready("serve-floor", f"{bases['floor']}/healthz")
        pids = {name: procs.running[f"serve-{name}"].pid for name in bases}
        engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.NullPool)
        scope.callback(engine.dispose)
        payload = json.dumps(REPORT)
        urls = {name: f"{base}/intake/v1/reports" for name, base in bases.items()}

        def load(name, duration, keyed=False, tag="warm"):
            return run_wrk(urls[name], token, payload, seconds=duration, threads=THREADS, connections=CONNECTIONS,
                           keyed=keyed, run_id=f"{scope.run_id}-{tag}", work_dir=scope.tmp)

        def rows(case: str) -> int:
            with engine.connect() as db:
                table = "floor_reports" if case == "floor" else "reports"
                return db.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()

        server = {"bare": "bare", "floor": "floor", "plain": "intake", "keyed": "intake"}
        for name in bases:  # warm up: imports, connection pools, PostgreSQL caches
            load(name, 2)
        best = {"bare": 0.0, "floor": 0.0, "plain": 0.0, "keyed": 0.0}
        errors = 0
        for round_ in range(rounds):
            for case in best:
                pid = pids[server[case]]
                before = rows(case) if case != "bare" else 0
                cpu_before = (cpu_seconds(pid, children=True), server_cpu_seconds()["postgres"])
                result = load(server[case], seconds, keyed=case == "keyed", tag=f"{case}{round_}")
                cpu = (cpu_seconds(pid, children=True) - cpu_before[0],
                       server_cpu_seconds()["postgres"] - cpu_before[1])
                errors += result.errors
                detail = (f"round {round_ + 1} {case:<5}: {result.rps:,.0f} req/s, {result.requests} requests, "
                          f"statuses {dict(sorted(result.statuses.items()))}, socket errors {result.socket_errors}, "
                          f"latency p50 {result.p50} p99 {result.p99}")
                if case != "bare":
                    time.sleep(0.5)  # requests in flight when wrk stopped still commit
                    added = rows(case) - before
                    created = result.count(201)
                    verdict = "ok" if 0 <= added - created <= CONNECTIONS else "MISMATCH"
                    per = 1000 / max(created, 1)
                    detail += (f"; rows added {added} vs 201s {created} ({verdict}); CPU per report: gunicorn "
                               f"{cpu[0] * per:.2f} ms, postgres {cpu[1] * per:.2f} ms")
                    if verdict != "ok":
                        errors += 1
                else:
                    detail += f"; CPU per request: gunicorn {cpu[0] * 1000 / max(result.requests, 1):.2f} ms"
                note(detail)
                if result.errors == 0:
                    best[case] = max(best[case], result.rps)
        if errors:
            note(f"INVALID: {errors} error(s) (non-2xx, socket errors or row mismatches); see the rounds above")
    bare_rps = best["bare"]

    def ratio(rps):
        return round(rps / bare_rps, 2) if bare_rps else None

    uncounted, counted = counting_cost(200 if quick else 2000, rounds)
    return [
        ("intake.report_cpu_uncounted", round(uncounted, 3), "ms", None),
        ("intake.report_cpu_counted", round(counted, 3), "ms", round(uncounted / counted, 2)),
        ("intake.bare_flask", round(bare_rps), "req/s", None),
        ("intake.durable_floor", round(best["floor"]), "req/s", ratio(best["floor"])),
        ("intake.accepts", round(best["plain"]), "req/s", ratio(best["plain"])),
        ("intake.accepts_keyed", round(best["keyed"]), "req/s", ratio(best["keyed"])),
        ("intake.errors", errors, "count", None),
    ]


def counting_cost(reports: int, rounds: int) -> tuple[float, float]:
    """CPU ms per report of ``submit_report`` without and with the per-person count (best of ``rounds``)."""
    from services.intake import bootstrap, handlers
    from services.intake.domain.reports import NewReport
    from services.intake.limits import Limits
    from shared.auth import Identity
    from shared.config import Settings

    with Scope("limits") as scope:
        service = bootstrap.build(Settings(database_urls={"intake": scope.database("intake")}, secret="x" * 32),
                                  web=False)
        scope.callback(service.engine.dispose)
        worker = Identity("grid_worker", "bench", "G")
        best = {False: float("inf"), True: float("inf")}
        for _ in range(rounds):
            for counted in (False, True):
                service.dependencies["limits"] = Limits("100000000/minute;100000000/day", "1/day") \
                    if counted else None
                service.__dict__.pop("_bound", None)  # the handler is bound again with its dependencies
                started = time.process_time()
                for n in range(reports):
                    service.run(handlers.submit_report, NewReport("street_light", f"lamp {n}", 102.264, 27.894),
                                worker, None)
                best[counted] = min(best[counted], (time.process_time() - started) / reports * 1000)
        note(f"submit_report, {reports} reports a round: {best[False]:.3f} ms CPU uncounted, "
             f"{best[True]:.3f} ms counted against two limits")
        return best[False], best[True]


def main() -> None:
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
