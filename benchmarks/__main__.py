"""Run every benchmark, print one line per figure and rewrite ``benchmarks/RESULTS.md``.

    python -m benchmarks [--only intake,pipeline,dispatch] [--quick] [--results PATH|-]
    make bench ARGS="--only pipeline --quick"

``make bench`` runs this under ``deploy/local/with-servers.sh``, which provides RabbitMQ and PostgreSQL
(``GRIDCASE_TEST_BROKER_URL``, ``GRIDCASE_TEST_POSTGRES_URL``). Each group runs in a fresh child process
(``python -m benchmarks --child NAME``), so one group's memory and threads cannot skew another's figures.
A figure line is ``name value unit ratio`` (``-``: no baseline); lines starting with ``# `` are notes
(method details, checks). ``--quick`` uses small sizes, for a smoke run. ``--results -`` writes no file.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._support import ROOT, emit, sigterm_as_exit

GROUPS = ("intake", "pipeline", "dispatch", "scheduler", "statistics", "photos", "notify", "fanout",
          "early_warning", "board")
#: run only when named in --only: they start servers of their own (cluster_pipeline: a 3-node cluster)
ON_REQUEST = ("cluster_pipeline",)
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
#: the heading of the part of RESULTS.md written by hand, which a run keeps
KEPT = "## Measured by hand (`make bench` keeps this section)"

#: What each figure's ratio means (and the goal, where there is one).
MEANING = {
    "intake.bare_flask": "raw baseline: bare Flask JSON POST echo, same gunicorn settings and wrk",
    "intake.durable_floor": "÷ bare Flask; the floor: the body stored by one psycopg INSERT and commit, no more",
    "intake.accepts": "÷ bare Flask; no Idempotency-Key (goal ≥ 0.35)",
    "intake.accepts_keyed": "÷ bare Flask; a unique Idempotency-Key per request (goal ≥ 0.35)",
    "intake.errors": "non-2xx + socket errors + row-count mismatches over all rounds (must be 0)",
    "intake.report_cpu_uncounted": "raw baseline: submit_report's CPU per report in-process, no per-person count",
    "intake.report_cpu_counted": "uncounted ÷ ours: the same with the count in the database (two limits)",
    "pipeline.raw_broker": "raw baseline: pika confirmed publish + consume with ack each, same messages",
    "pipeline.cases_per_s": "÷ raw broker msgs/s (goal ≥ 0.08)",
    "pipeline.cpu_per_case": "CPU of every process of the pipeline (workers, PostgreSQL, RabbitMQ) per case",
    "pipeline.cpu_ceiling": "÷ raw broker msgs/s; cases/s were every core busy at that CPU per case: the most "
                            "the ratio can be at this cost",
    "pipeline.latency_p50": "report → level 1 (escalation opened_at − intake reported_at)",
    "pipeline.latency_p99": "report → level 1 (goal ≤ 100 ms at 100 reports/s)",
    "pipeline.latency_errors": "failed POSTs in the latency run (must be 0)",
    "cluster_pipeline.single_node": "outbox → level 1 on one RabbitMQ node + one PostgreSQL (baseline)",
    "cluster_pipeline.three_nodes": "÷ single node: 3 RabbitMQ nodes (quorum queues) + PostgreSQL primary with "
                                    "a synchronous standby, on the same machine",
    "dispatch.build_100000_grids": "generate + Hierarchy + Locator",
    "dispatch.rss_100000_grids": "after building the Locator (goal ≤ 500 MB)",
    "dispatch.peak_rss_so_far": "peak of the dispatch child process",
    "dispatch.import_berlin": "ratio = JSON parse s ÷ import s",
    "dispatch.validate_800_piled_grids": "800 grids piled on each other, refused; the baseline of the next",
    "dispatch.validate_3200_piled_grids": "the 800 pile's s ÷ ours (0.25: linear growth; before the cap: 0.06)",
    "dispatch.validate_peak_3200_piled_grids": "peak memory growth validating it",
    "scheduler.lag_p99_growth": "p99 lag with 10⁶ open cases ÷ with 10⁴ (goal ≤ 1.5)",
    "statistics.raw_scan": "raw baseline: plain GROUP BY station over the year's 10⁶ statistics rows",
    "statistics.year_by_station_month": "raw s ÷ ours; 10⁶ closed cases, a year by station and month, from the "
                                        "rollups, exact (goal ≤ 0.25 s)",
    "statistics.year_by_station_day": "raw s ÷ ours; the same by station and day (138 × 365 groups; goal ≤ 1 s)",
    "statistics.station_scope": "raw s ÷ ours; one station's year by month",
    "statistics.from_cases_station_month": "the same answer from the 10⁶ per-case rows (before the rollups); "
                                           "ratio: ÷ ours",
    "statistics.from_cases_station_day": "the same by day from the per-case rows; ratio: ÷ ours",
    "statistics.refresh_month": "refresh after 1,000 cases of one month changed; ratio: ms per changed case",
    "notify.raw_post": "raw baseline: the same webhook POSTs from 8 threads with requests, same receivers",
    "notify.webhooks_per_s": "÷ raw posts/s; pending webhook notifications delivered by one notifier",
    "fanout.db_queries_per_s": "escalation DB transactions/s per API process, 2,000 boards on 2 replicas; "
                               "÷ the same with 1 board per replica (goal ≤ 10 per process whatever the screens)",
    "fanout.db_queries_one_board": "the same with one board per replica (the baseline)",
    "fanout.event_delay_p50": "a case's commit → its event on a board, every (board, event) pair",
    "fanout.event_delay_p99": "the same, p99 (goal ≤ 2 s); ratio = the one-board run's p99 ÷ ours",
    "fanout.memory_per_board": "the replicas' resident memory with every board connected less with one each, ÷ boards",
    "fanout.boards": "boards connected (of 2,000; quick 200)",
    "fanout.missed": "(board, event) pairs not delivered within 5 s after the window (must be 0)",
    "board.first_paint_100": "raw baseline: the board for a sub-center with 100 open cases, navigation → list painted",
    "board.first_paint_10k": "÷ the 100-case board; 10⁴ open cases in scope (goal ≤ 1.5 s)",
    "board.first_paint_2k": "÷ the 100-case board; quick: 2,000 open cases",
    "board.list_whole_100": "raw baseline: the 100-case board, navigation → the whole list in and drawn",
    "board.list_whole_10k": "÷ the 100-case board; 10⁴ open cases: the whole list (its counts) after the first screen",
    "board.list_whole_2k": "÷ the 100-case board; quick: 2,000 open cases",
    "board.map_ready_100": "raw baseline: the 100-case board, navigation → every pin in the cluster group",
    "board.map_ready_10k": "÷ the 100-case board; 10⁴ open cases, clustered pins",
    "board.map_ready_2k": "÷ the 100-case board; quick: 2,000 open cases",
    "board.live_p50": "a POSTed report → its row on the 10⁴-case board, 200 reports at 5/s",
    "board.live_p99": "the same, p99 (goal ≤ 200 ms)",
    "board.rows_built_per_event": "rows the list built per live event (1: only the event's own row)",
    "board.live_missed": "reports whose row was not on the board 30 s after the last POST (must be 0)",
}


def _meaning(name: str) -> str:
    if name in MEANING:
        return MEANING[name]
    if name.startswith("dispatch.raw_strtree_within"):
        return "raw baseline: shapely STRtree.query(points, predicate=\"within\")"
    if name.startswith("dispatch.locate_many"):
        return "÷ raw STRtree (goal ≥ 0.8)"
    if name.startswith("dispatch.locate_one"):
        return "ratio = raw per-point STRtree µs ÷ ours (goal ≤ 50 µs per locate)"
    if name.startswith("dispatch.import_"):
        return "ratio = JSON parse s ÷ import s"
    if name.startswith("scheduler.lag_"):
        return "deadline → case.escalated written, one scheduler, 0.2 s tick (goal p99 ≤ 1 s)"
    if name.startswith("scheduler.raw_claim"):
        return "raw baseline: SELECT … FOR UPDATE SKIP LOCKED + UPDATE, 500 rows a transaction"
    if name.startswith("photos.raw_decode_"):
        return "raw baseline: Pillow's Image.open(...).load() of the same file, CPU s"
    if name.startswith("photos.clean_peak_"):
        return "peak memory of clean (VmHWM growth); ratio = raw decode's ÷ ours"
    if name.startswith("photos.clean_"):
        return "CPU s of photos.clean (decode, clean, re-encode, thumbnail); ratio = raw decode s ÷ ours"
    if name.startswith("scheduler.escalations"):
        return "÷ raw claim rows/s; a burst of due cases"
    if name.startswith("early_warning.raw_"):
        return "raw baseline: INSERT the point + the indexed SELECT of its 3 × 3 cells, a transaction each"
    if name.startswith("early_warning.per_report_"):
        return "raw µs ÷ ours; both rules, a unit of work per report, N recent reports in the window"
    if name.startswith("early_warning.full_scan_"):
        return "without the index: every point of the rule in the window, distances in Python"
    if name.startswith("early_warning.growth_"):
        return "per-report cost with 10⁵ stored ÷ with 10³ (goal ≤ 1.5); ratio: the same against the raw baseline"
    return ""


# -- the children ------------------------------------------------------------------------------------------

def _child(name: str, quick: bool) -> None:
    sigterm_as_exit()
    if name == "intake":
        from benchmarks import intake
        emit(intake.run(quick=quick))
    elif name == "pipeline":
        from benchmarks import pipeline
        emit(pipeline.run(quick=quick))
    elif name == "dispatch":
        from benchmarks import areas_import, dispatch
        if quick:
            emit(dispatch.run(sizes=(2_000, 10_000), points=50_000, rounds=2))
        else:
            emit(dispatch.run())
        emit(areas_import.run(quick=quick))
    elif name == "scheduler":
        from benchmarks import scheduler
        emit(scheduler.run(quick=quick))
    elif name == "statistics":
        from benchmarks import statistics
        emit(statistics.run(quick=quick))
    elif name == "photos":
        from benchmarks import photos
        emit(photos.run(quick=quick))
    elif name == "notify":
        from benchmarks import notify
        emit(notify.run(quick=quick))
    elif name == "fanout":
        from benchmarks import fanout
        emit(fanout.run(quick=quick))
    elif name == "early_warning":
        from benchmarks import early_warning
        emit(early_warning.run(quick=quick))
    elif name == "board":
        from benchmarks import board
        emit(board.run(quick=quick))
    elif name == "cluster_pipeline":
        from benchmarks import cluster_pipeline
        emit(cluster_pipeline.run(quick=quick))
    else:
        raise SystemExit(f"unknown benchmark {name!r}")


def _run_group(name: str, quick: bool) -> tuple[list[tuple], list[str], int, float]:
    """Run one group in a child process, echoing its lines; returns (figures, notes, exit code, seconds)."""
    command = [sys.executable, "-m", "benchmarks", "--child", name] + (["--quick"] if quick else [])
    figures, notes = [], []
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        for line in child.stdout:
            line = line.rstrip("\n")
            print(line, flush=True)
            if line.startswith("# "):
                notes.append(line[2:])
                continue
            parts = line.split()
            if len(parts) == 4:
                figures.append(tuple(parts))
        code = child.wait()
    except BaseException as exc:
        # Ctrl-C has reached the child too (same process group); our SIGTERM (SystemExit) is passed on.
        # Either way the child stops its servers and drops its databases in its own `finally` blocks:
        # wait for that.
        if child.poll() is None and not isinstance(exc, KeyboardInterrupt):
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    return figures, notes, code, time.monotonic() - started


# -- RESULTS.md --------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _server_versions() -> str:
    out = []
    try:
        import psycopg
        with psycopg.connect(os.environ["GRIDCASE_TEST_POSTGRES_URL"].replace("postgresql+psycopg", "postgresql"),
                             connect_timeout=5) as connection:
            out.append("PostgreSQL " + connection.execute("SHOW server_version").fetchone()[0])
    except Exception:
        out.append("PostgreSQL ?")
    try:
        from kombu import Connection
        with Connection(os.environ["GRIDCASE_TEST_BROKER_URL"], connect_timeout=5) as connection:
            connection.connect()
            version = connection.connection.server_properties.get("version", "?")
            out.append(f"RabbitMQ {version.decode() if isinstance(version, bytes) else version}")
    except Exception:
        out.append("RabbitMQ ?")
    return ", ".join(out)


def _server_origin() -> str:
    origin = "servers given by GRIDCASE_TEST_BROKER_URL / GRIDCASE_TEST_POSTGRES_URL"
    if os.environ.get("GRIDCASE_TEST_POSTGRES_BASE"):
        origin = "throwaway servers started by deploy/local/with-servers.sh"
    vhost = ("a RabbitMQ vhost per benchmark" if os.environ.get("GRIDCASE_TEST_RABBITMQ_BASE")
             else "the URL's RabbitMQ vhost")
    return f"{origin}; {vhost}"


def _write_results(path: Path, command: str, results: dict, started: datetime, seconds: float,
                   load: tuple[tuple, tuple]) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m benchmarks` (`make bench`); every run rewrites this file. Each figure comes with a",
        "ratio against a raw baseline measured in the same run, because the machine is shared and noisy: compare",
        "ratios between runs, not absolute numbers. Method: the docstrings of `benchmarks/intake.py`,",
        "`benchmarks/pipeline.py`, `benchmarks/dispatch.py`, `benchmarks/areas_import.py` and",
        "`benchmarks/early_warning.py`.",
        "",
        "| | |",
        "|---|---|",
        f"| date | {started:%Y-%m-%d %H:%M} UTC |",
        f"| command | `{command}` |",
        f"| machine | {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {_cpu_model()}, "
        f"{platform.system()} {platform.release()} |",
        f"| Python | {platform.python_version()} ({platform.python_implementation()}) |",
        f"| servers | {_server_versions()}; {_server_origin()} |",
        f"| load average | {' '.join(f'{x:.2f}' for x in load[0])} at the start, "
        f"{' '.join(f'{x:.2f}' for x in load[1])} at the end |",
        f"| duration | {seconds:.0f} s |",
        "",
        "| figure | value | unit | ratio | ratio / meaning |",
        "|---|---:|---|---:|---|",
    ]
    for group, (figures, _notes, code, _s) in results.items():
        for name, value, unit, ratio in figures:
            lines.append(f"| `{name}` | {value} | {unit} | {ratio} | {_meaning(name)} |")
        if code != 0:
            lines.append(f"| `{group}` | FAILED | exit {code} | - | see the notes |")
    lines += ["", "## Notes (printed by the benchmarks)", ""]
    for group, (_figures, notes, code, group_seconds) in results.items():
        lines.append(f"**{group}** ({group_seconds:.0f} s{'' if code == 0 else f', exit code {code}'})")
        lines.append("")
        lines += [f"- {note}" for note in notes] or ["- (none)"]
        lines.append("")
    kept = path.read_text().partition(KEPT)[2] if path.exists() else ""
    if kept:  # figures measured by hand (a first start from a fresh clone) stay until measured again
        lines += [KEPT + kept.rstrip("\n"), ""]
    path.write_text("\n".join(lines))


# -- main --------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated, of: {', '.join(GROUPS + ON_REQUEST)} (default: all but "
                             f"{', '.join(ON_REQUEST)})")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--results", default=str(RESULTS), help="where to write the results ('-': nowhere)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.quick)
        return 0
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS + ON_REQUEST]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(GROUPS + ON_REQUEST)}")
    for name in ("GRIDCASE_TEST_BROKER_URL", "GRIDCASE_TEST_POSTGRES_URL"):
        if not os.environ.get(name) and any(g in groups for g in ("intake", "pipeline", "cluster_pipeline")):
            parser.error(f"{name} is not set: run `make bench` (deploy/local/with-servers.sh provides the servers)")
    sigterm_as_exit()
    started, t0, load0 = datetime.now(UTC), time.monotonic(), os.getloadavg()
    results = {}
    for group in groups:
        results[group] = _run_group(group, args.quick)
        if results[group][2] != 0:
            print(f"# {group} FAILED with exit code {results[group][2]}", flush=True)
    seconds = time.monotonic() - t0
    command = " ".join(["python -m benchmarks"] + (argv if argv is not None else sys.argv[1:]))
    if args.results != "-":
        _write_results(Path(args.results), command, results, started, seconds, (load0, os.getloadavg()))
        print(f"# results written to {args.results} ({seconds:.0f} s)", flush=True)
    return 0 if all(code == 0 for _f, _n, code, _s in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
