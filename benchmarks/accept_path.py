"""The accept path's CPU, in-process: what ``POST /intake/v1/reports`` costs without an HTTP server, and
where it goes.

    deploy/local/with-servers.sh .venv/bin/python -m benchmarks.accept_path [--parts] [--root DIR] [--n N]

Intake is built as ``benchmarks/intake.py`` builds it (``bootstrap.build``, PostgreSQL from
``GRIDCASE_TEST_POSTGRES_URL``, a database of its own, dropped at the end), with the gunicorn benchmark's
one per-person limit (``100000000/second``). A grid worker's report (the benchmark's body and bearer
token) is posted by calling the WSGI app directly — no test client, no server: what gunicorn adds (HTTP
parsing, the socket) is not in these figures.

- Default: CPU ms per report (``time.process_time``, best of ``--rounds`` rounds of ``--n`` reports) of
  the POST, and of ``submit_report`` alone run through ``service.run``, after a warm-up.
- ``--parts``: each part of the POST timed alone with ``time.process_time`` around it (inclusive; the
  parts inside another are listed under it, indented; each timer costs about a microsecond), over
  ``--n`` reports: the table of "where each microsecond goes" in ``benchmarks/RESULTS.md``.
- ``--root DIR``: run the code of another checkout (``git archive REV | tar -x -C DIR``), to compare a
  commit before a change with this one in the same sitting (``--parts`` needs this one's code).
"""
from __future__ import annotations

import argparse
import collections
import functools
import io
import json
import logging
import os
import sys
import time
import uuid

BODY = {"category": "street_light", "description": "Lamp out at gate 3", "location": {"lon": 102.264, "lat": 27.894}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", action="store_true")
    parser.add_argument("--root", default=None)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.root:
        sys.path.insert(0, os.path.abspath(args.root))
        os.chdir(args.root)
    logging.disable(logging.WARNING)
    from benchmarks._support import create_database, drop_database, require_env
    from services.intake import bootstrap
    from services.intake.limits import Limits
    from shared.config import Settings

    admin = require_env("GRIDCASE_TEST_POSTGRES_URL")
    name = f"gridcase_bench_accept_{uuid.uuid4().hex[:10]}"
    url = create_database(admin, name)
    try:
        service = bootstrap.build(Settings(database_urls={"intake": url}, secret="x" * 32), web=True)
        service.dependencies["limits"] = Limits("100000000/second", "1/day")
        service.__dict__.pop("_bound", None)
        try:
            if args.parts:
                parts(service, args.n)
            else:
                totals(service, args.n, args.rounds)
        finally:
            service.engine.dispose()
    finally:
        drop_database(admin, name)


def poster(service):
    """A function posting one report through the WSGI app (asserting its 201)."""
    from werkzeug.test import EnvironBuilder

    from shared.auth import issue_token

    body = json.dumps(BODY).encode()
    token = issue_token("x" * 32, "grid_worker", area="G", user="bench")
    environ = EnvironBuilder(path="/intake/v1/reports", method="POST", data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}).get_environ()
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def post():
        answer = service.app({**environ, "wsgi.input": io.BytesIO(body)}, start_response)
        b"".join(answer)
        answer.close()
        status = statuses.pop()
        assert status.startswith("201"), status
    return post


def totals(service, n: int, rounds: int) -> None:
    from services.intake import handlers
    from services.intake.domain.reports import NewReport
    from shared.auth import Identity

    post = poster(service)
    worker = Identity("grid_worker", "bench", "G")

    def submit():
        service.run(handlers.submit_report, NewReport("street_light", "lamp", 102.264, 27.894), worker, None)

    best = {}
    for label, run in (("post", post), ("submit_report", submit)):
        for _ in range(100):
            run()
        times = []
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(n):
                run()
            times.append((time.process_time() - started) / n * 1000)
        best[label] = min(times)
    print(f"CPU ms per report: POST {best['post']:.3f}, submit_report {best['submit_report']:.3f} "
          f"(best of {rounds} rounds of {n}; load average {os.getloadavg()[0]:.1f})")


def parts(service, n: int) -> None:
    from services.intake import api, handlers
    from services.intake import store as stores
    from services.intake.domain.reports import NewReport
    from shared import logs, uow, web

    spent, order = collections.Counter(), []

    def timed(label, function):
        order.append(label)

        @functools.wraps(function)
        def measured(*args, **kwargs):
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - started
        return measured

    def patch(owner, name, label):
        setattr(owner, name, timed(label, getattr(owner, name)))

    post = poster(service)
    for _ in range(200):
        post()
    app = service.app
    app.before_request_funcs[None] = [timed("request-start hook (authentication, body limit, the view's rules)", f)
                                      for f in app.before_request_funcs[None]]
    patch(logs, "enter", "  log context and trace id")
    patch(web.TokenVerifier, "read", "  the token (cached) and its revocation")
    patch(web.GridcaseParser, "parse", "body parsed and validated (webargs)")
    patch(web.GridcaseParser, "_raw_load_json", "  JSON read and decoded (encoding, duplicate names, depth)")
    patch(api.ReportIn, "load", "  ReportIn.load (marshmallow)")
    patch(type(service), "run", "the use case (service.run: unit of work, dependencies)")
    patch(handlers, "submit_report", "  submit_report")
    patch(stores.ReportStore, "flush", "    the statement: counts, report and outbox row, in its transaction")
    patch(uow.UnitOfWork, "add", "    case.reported encoded (make_message)")
    patch(NewReport, "fingerprint", "    fingerprint")
    patch(stores._Blocks, "next", "    report number (a block of the sequence)")
    patch(api, "full_view", "response built (report_view)")
    patch(api.ReportOut, "dump", "response dumped (ReportOut, marshmallow)")
    patch(web.JSONAnswers, "response", "response encoded (orjson) with its Response")
    app.after_request_funcs[None] = [timed("after-request hook (metrics, headers)", f)
                                     for f in app.after_request_funcs[None]]
    app.teardown_request_funcs[None] = [timed("teardown (log context)", f) for f in app.teardown_request_funcs[None]]
    started = time.process_time()
    for _ in range(n):
        post()
    total = (time.process_time() - started) / n * 1e6
    print(f"CPU per report {total:.0f} µs over {n} reports (load average {os.getloadavg()[0]:.1f})")
    print("| part | µs |\n|---|---:|")
    for label in order:
        print(f"| {label} | {spent[label] / n * 1e6:.0f} |")


if __name__ == "__main__":
    main()
