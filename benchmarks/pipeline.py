"""Pipeline benchmark: cases/s from intake's outbox to level 1 in escalation on RabbitMQ + PostgreSQL, and
report → level-1 latency, against the same broker's raw confirmed-publish + consume-with-ack rate.

    python -m benchmarks.pipeline [--quick]

Set-up: three fresh PostgreSQL databases and a RabbitMQ vhost of our own (see ``Scope.broker``); a generated
city (1,500 grids) imported with ``gridcase areas import``; then the production processes
``gridcase worker intake`` (the relay), ``gridcase worker dispatch``, ``gridcase worker escalation`` and
``gridcase serve intake --workers 2``. One warm-up report is posted over HTTP and waited for at level 1, so
every process has connected, migrated and loaded the city before anything is timed.

Throughput: N reports (20,000; ``--quick`` 2,000; category ``street_light``, which starts at the grid, at
points inside random grids) are written into intake's database in ONE transaction — the same ``reports``
row and ``case.reported`` outbox row ``services.intake.handlers.submit_report`` writes, the message built
with the same ``make_message`` — while the workers run. The clock starts when that transaction has
committed; ``pipeline.cases_per_s`` = N ÷ (the last case's ``opened_at`` in escalation − commit time). It
covers the intake relay, dispatch's consumer (locate, its outbox), dispatch's relay and escalation's
consumer, all overlapping.

Raw baseline (``pipeline.raw_broker``), same run, same broker: the same N bodies (the ``case.reported``
envelopes about to be written) published persistent with pika's pipelined publisher confirms (1,000 in
flight, pika ``SelectConnection``) to a fresh quorum queue, then consumed on the same connection (prefetch
500), acking each message; msgs/s = N ÷ (publish seconds + consume seconds), connection set-up not timed.
Measured before and after the pipeline run; the better of the two is the baseline. Ratio = cases/s ÷ raw
msgs/s (the raw figure is one broker hop; the pipeline makes two, plus three databases). The note
"CPU per case" is each worker process's user + system CPU during the throughput run ÷ N, and the same for
all PostgreSQL processes together and for the RabbitMQ node (also serving the other benchmark processes'
light polling). ``pipeline.cpu_per_case`` is their sum, and ``pipeline.cpu_ceiling`` the cases/s the
machine's cores would give were they all busy at that cost (cores ÷ CPU per case): how far the throughput is
from what its CPU allows and, against the raw broker of the same run, the most the ratio can be at this
cost. The raw baseline's CPU per message (this process's pika client and the RabbitMQ node) and the cores it
kept busy are noted beside it.

Latency: after the backlog has drained, reports are POSTed over HTTP to ``gridcase serve intake`` (2 sync
workers) at 100/s for 10 s (``--quick`` 5 s) by an open-loop client (each request's send time fixed in
advance, 16 threads, unique Idempotency-Keys); the rate actually achieved is printed. 200/s is too much
for this 2-core machine with the whole pipeline on it: intake's HTTP path costs ~4-5 ms CPU per report and
the pipeline ~4-5 ms per case. Each case's latency = escalation ``cases.opened_at`` − intake
``reports.reported_at``: both are ``clock.now()`` (time scale 1) on this machine's clock, stamped inside
the services' transactions, so it is durable accept → durable level 1, without the HTTP response time.
A note splits the median by hop, from the ``sent_at`` / ``dispatched_at`` timestamps in the services'
tables.
"""
from __future__ import annotations

import os
import random
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import requests
import sqlalchemy as sa

from benchmarks._support import Figure, Scope, cpu_seconds, emit, note, percentile, server_cpu_seconds, sigterm_as_exit
from harness.processes import GRIDCASE, wait_for
from shared.auth import issue_token

CITY_GRIDS = 1500
RATE = 100  # reports/s offered in the latency run (200/s saturates this 2-core machine: see RESULTS.md)


def run(quick: bool = False) -> list[Figure]:
    n = 2_000 if quick else 20_000
    latency_seconds = 5 if quick else 10
    with Scope("pipeline") as scope:
        broker = scope.broker()
        urls = {s: scope.database(s) for s in ("intake", "dispatch", "escalation")}
        env = {"GRIDCASE_BROKER_URL": broker, "GRIDCASE_SECRET": "bench-" + uuid.uuid4().hex * 2,
               "GRIDCASE_LOG_LEVEL": "WARNING", "GRIDCASE_REPORT_RATE_LIMIT": "100000000/second",
               **{f"GRIDCASE_{s.upper()}_DATABASE_URL": url for s, url in urls.items()}}
        engines = {s: sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.NullPool)
                   for s, url in urls.items()}
        for engine in engines.values():
            scope.callback(engine.dispose)

        points = _import_city(scope, env)
        procs = scope.processes
        for service in ("intake", "dispatch", "escalation"):
            procs.gridcase(f"worker-{service}", ["worker", service, "--data-dir", str(scope.tmp)], env)
        base = procs.serve("serve-intake", GRIDCASE + ["serve", "intake", "--workers", "2",
                                                       "--data-dir", str(scope.tmp)], env)
        procs.wait_ready("serve-intake", f"{base}/intake/readyz")
        token = issue_token(env["GRIDCASE_SECRET"], "grid_worker", area="G", user="bench")  # a bench city
        warm = _post(requests.Session(), base, token, *points[0])
        wait_for(lambda: _cases(engines["escalation"]) >= 1, 120, 0.1, "the warm-up case at level 1", watch=procs)

        rows, messages = _prepare_reports(engines["intake"], n, points)
        bodies = [m["body"].encode() for m in messages]
        raw_before = _raw_broker(broker, bodies)
        note(f"raw broker before: {raw_before['rate']:,.0f} msgs/s (publish {raw_before['publish']:.2f} s, "
             f"consume {raw_before['consume']:.2f} s, {len(bodies)} msgs of ~{sum(map(len, bodies)) // len(bodies)} B; "
             f"CPU per message, pika client and RabbitMQ: {raw_before['cpu_ms']:.3f} ms, "
             f"{raw_before['cpu_ms'] * raw_before['rate'] / 1000:.2f} cores busy)")

        workers = {name: procs.running[f"worker-{name}"].pid for name in ("intake", "dispatch", "escalation")}
        cpu_before = {name: cpu_seconds(pid) for name, pid in workers.items()}
        servers_before = server_cpu_seconds()
        committed = _write_reports(engines["intake"], rows, messages)
        timeout = max(120.0, n / 50)
        _wait_for_cases(engines["escalation"], 1 + n, timeout, procs)
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / n * 1000 for name, pid in workers.items()}
        cpu.update({name: (seconds - servers_before.get(name, 0.0)) / n * 1000
                    for name, seconds in server_cpu_seconds().items()})
        note("CPU per case in the throughput run: "
             + ", ".join(f"{name}{' worker' if name in workers else ''} {ms:.2f} ms" for name, ms in cpu.items()))
        with engines["escalation"].connect() as db:
            last = db.execute(sa.text("SELECT max(opened_at) FROM cases WHERE id <> :w"), {"w": warm}).scalar_one()
            first = db.execute(sa.text("SELECT min(opened_at) FROM cases WHERE id <> :w"), {"w": warm}).scalar_one()
        elapsed = last.timestamp() - committed
        cases_per_s = n / elapsed
        steady = (n - 1) / (last - first).total_seconds()
        note(f"throughput: {n} cases at level 1 in {elapsed:.2f} s after the commit (first after "
             f"{first.timestamp() - committed:.2f} s; between first and last {steady:,.0f} cases/s)")

        raw_after = _raw_broker(broker, bodies)
        note(f"raw broker after: {raw_after['rate']:,.0f} msgs/s (publish {raw_after['publish']:.2f} s, "
             f"consume {raw_after['consume']:.2f} s)")
        raw = max(raw_before["rate"], raw_after["rate"])
        per_case = sum(cpu.values())
        ceiling = os.cpu_count() / per_case * 1000
        note(f"CPU per case, every process of the pipeline: {per_case:.2f} ms; were the {os.cpu_count()} cores all "
             f"busy at that cost: {ceiling:,.0f} cases/s ({cases_per_s / ceiling:.0%} of it reached), "
             f"{ceiling / raw:.3f} of the raw broker; one hop alone (the dispatch worker: receive, store, relay) "
             f"{cpu['dispatch']:.2f} ms, a raw message {min(raw_before['cpu_ms'], raw_after['cpu_ms']):.3f} ms")

        posted, failures, offered = _steady_load(base, token, points, RATE, latency_seconds)
        _wait_for_cases(engines["escalation"], 1 + n + len(posted), 60, procs)
        latencies = _latencies(engines, posted)
        note(_stages(engines, posted))
        note(f"latency: {len(posted)} reports posted at {offered:.0f}/s offered for {latency_seconds} s, "
             f"{failures} failed; opened_at − reported_at over {len(latencies)} cases: "
             f"p50 {percentile(latencies, 50):.1f} ms, p90 {percentile(latencies, 90):.1f} ms, "
             f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms")
        for name in procs.running:
            procs.check(name)
    return [
        ("pipeline.raw_broker", round(raw), "msgs/s", None),
        ("pipeline.cases_per_s", round(cases_per_s), "cases/s", round(cases_per_s / raw, 3)),
        ("pipeline.cpu_per_case", round(per_case, 2), "ms", None),
        ("pipeline.cpu_ceiling", round(ceiling), "cases/s", round(ceiling / raw, 3)),
        ("pipeline.latency_p50", round(percentile(latencies, 50), 1), "ms", None),
        ("pipeline.latency_p99", round(percentile(latencies, 99), 1), "ms", None),
        ("pipeline.latency_errors", failures, "count", None),
    ]


# -- set-up --------------------------------------------------------------------------------------------

def _import_city(scope: Scope, env: dict) -> list[tuple[float, float]]:
    """Generate and import the city; returns one point inside each grid."""
    from shapely.geometry import shape

    from services.dispatch.citygen import generate_city, write_city

    city = generate_city(CITY_GRIDS)
    folder = scope.tmp / "city"
    write_city(city, folder)
    args = ["areas", "import", "--data-dir", str(scope.tmp)]
    for level in ("hq", "subcenter", "station", "grid"):
        args += ["--level", level, str(folder / f"{level}.geojson")]
    scope.processes.run("areas-import", GRIDCASE + args, env, timeout=300)
    points = []
    for feature in city["grid"]["features"]:
        point = shape(feature["geometry"]).representative_point()
        points.append((round(point.x, 6), round(point.y, 6)))
    return points


def _cases(engine: sa.Engine) -> int:
    """Cases in escalation's database (0 until its worker has created the tables)."""
    with engine.connect() as db:
        try:
            return db.execute(sa.text("SELECT count(*) FROM cases")).scalar_one()
        except sa.exc.ProgrammingError:  # the escalation worker is still migrating its database
            return 0


def _wait_for_cases(engine: sa.Engine, total: int, timeout: float, procs) -> None:
    deadline = time.monotonic() + timeout
    while (count := _cases(engine)) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {total} cases reached escalation within {timeout:.0f} s")
        for name in procs.running:
            procs.check(name)
        time.sleep(0.2)


# -- the reports, as intake writes them ----------------------------------------------------------------

def _report(case_id: str, number: str, lon: float, lat: float, now: datetime) -> tuple[dict, object]:
    from services.intake.domain.reports import NewReport
    from shared.messages import events, make_message

    report = NewReport("street_light", f"bench lamp {number}", lon, lat)
    row = {"id": case_id, "idempotency_key": None, "reporter": "bench",
           "fingerprint": report.fingerprint(), "category": report.category, "severity": "normal",
           "description": report.description, "lon": lon, "lat": lat, "status": "reported",
           "reported_at": now, "updated_at": now}
    envelope = make_message(events.CaseReported(
        case_id=case_id, number=number, category=report.category, severity="normal",
        description=report.description, location=events.Location(lon, lat), reporter="bench", reported_at=now),
        occurred_at=now, producer="intake")
    return row, envelope


def _prepare_reports(engine: sa.Engine, n: int, points) -> tuple[list[dict], list[dict]]:
    """N ``reports`` rows and their ``case.reported`` outbox rows, numbered from intake's own sequence."""
    from services.intake.domain.reports import report_number
    from shared.config import Settings

    with engine.begin() as db:
        seqs = db.execute(sa.text("SELECT nextval(pg_get_serial_sequence('reports', 'seq')) "
                                  "FROM generate_series(1, :n)"), {"n": n}).scalars().all()
    rng = random.Random(2)
    now = datetime.now(UTC)
    rows, messages = [], []
    for seq in seqs:
        number = report_number(seq, now, Settings().time_zone)
        row, envelope = _report(str(uuid.uuid4()), number, *rng.choice(points), now)
        rows.append({"seq": seq, **row})
        messages.append({"message_id": envelope.id, "type": envelope.type, "body": envelope.to_json(),
                         "created_at": now})
    return rows, messages


def _write_reports(engine: sa.Engine, rows: list[dict], messages: list[dict]) -> float:
    """The reports and their outbox rows in one transaction; returns the wall time after the commit."""
    from services.intake.store import reports
    from shared.outbox import outbox

    with engine.begin() as db:
        db.execute(reports.insert(), rows)
        db.execute(outbox.insert(), messages)
    return time.time()


# -- the raw broker baseline ---------------------------------------------------------------------------

def _raw_broker(url: str, bodies: list[bytes]) -> dict:
    import pika

    from shared.pika_publisher import pika_url

    parameters = pika.URLParameters(pika_url(url))
    queue = f"bench.raw-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(parameters) as connection:
        connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        raw = _RawBroker(parameters, queue, bodies)
        cpu_before = (time.process_time(), server_cpu_seconds()["rabbitmq"])
        raw.run()
        cpu = (time.process_time() - cpu_before[0], server_cpu_seconds()["rabbitmq"] - cpu_before[1])
    finally:
        with pika.BlockingConnection(parameters) as connection:
            connection.channel().queue_delete(queue)
    return {"publish": raw.published, "consume": raw.consumed, "rate": len(bodies) / (raw.published + raw.consumed),
            "cpu_ms": sum(cpu) / len(bodies) * 1000}


class _RawBroker:
    """On one pika SelectConnection, once connected: publish every body persistent with publisher confirms,
    up to ``window`` unconfirmed; when all are confirmed, consume them (prefetch 500), acking each one.
    Connection set-up is not timed."""

    def __init__(self, parameters, queue: str, bodies: list[bytes], window: int = 1000, prefetch: int = 500):
        import pika
        from pika.adapters.select_connection import SelectConnection

        self.pika, self.queue, self.bodies, self.window, self.prefetch = pika, queue, bodies, window, prefetch
        self.properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        self.sent = self.received = 0
        self.floor = 1  # every tag below has been confirmed
        self.pending: set[int] = set()
        self.error: str | None = None
        self.published = self.consumed = 0.0
        self.connection = SelectConnection(parameters, on_open_callback=self._on_open,
                                           on_open_error_callback=self._fail, on_close_callback=self._closed)

    def run(self) -> None:
        timer = self.connection.ioloop.call_later(300, lambda: self._fail(None, "timed out"))
        self.connection.ioloop.start()
        self.connection.ioloop.remove_timeout(timer)
        if self.error:
            raise RuntimeError(f"raw broker baseline failed: {self.error}")

    def _on_open(self, connection):
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel):
        self.channel = channel
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._start)

    def _start(self, _frame):
        self.started = time.perf_counter()
        self._fill()

    def _fill(self):
        while self.sent < len(self.bodies) and len(self.pending) < self.window:
            self.channel.basic_publish("", self.queue, self.bodies[self.sent], self.properties)
            self.sent += 1
            self.pending.add(self.sent)

    def _on_confirm(self, frame):
        method = frame.method
        if isinstance(method, self.pika.spec.Basic.Nack):
            self._fail(None, f"nack {method.delivery_tag}")
            return
        if method.multiple:
            for tag in range(self.floor, method.delivery_tag + 1):
                self.pending.discard(tag)
            self.floor = max(self.floor, method.delivery_tag + 1)
        else:
            self.pending.discard(method.delivery_tag)
        if self.sent < len(self.bodies):
            self._fill()
        elif not self.pending and not self.published:
            self.published = time.perf_counter() - self.started
            self.connection.channel(on_open_callback=self._on_consumer_channel)

    def _on_consumer_channel(self, channel):
        self.consumer = channel
        channel.basic_qos(prefetch_count=self.prefetch, callback=lambda _: self._consume())

    def _consume(self):
        self.started = time.perf_counter()
        self.consumer.basic_consume(self.queue, self._on_message)

    def _on_message(self, channel, method, _properties, _body):
        channel.basic_ack(method.delivery_tag)
        self.received += 1
        if self.received == len(self.bodies):
            self.consumed = time.perf_counter() - self.started
            self.connection.close()

    def _closed(self, _connection, reason):
        if self.received < len(self.bodies):
            self.error = self.error or f"connection closed: {reason}"
        self.connection.ioloop.stop()

    def _fail(self, _connection, reason):
        self.error = self.error or str(reason)
        if self.connection.is_open:
            self.connection.close()
        else:
            self.connection.ioloop.stop()


# -- latency -------------------------------------------------------------------------------------------

def _post(session: requests.Session, base: str, token: str, lon: float, lat: float) -> str:
    response = session.post(f"{base}/intake/v1/reports", timeout=30, json={
        "category": "street_light", "description": "bench lamp", "location": {"lon": lon, "lat": lat}},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
    if response.status_code != 201:
        raise RuntimeError(f"POST answered {response.status_code}: {response.text[:300]}")
    return response.json()["id"]


def _steady_load(base: str, token: str, points, rate: float, seconds: float, threads: int = 16):
    """Open loop: request i is due at start + i/rate whatever happened to the others."""
    total = int(rate * seconds)
    rng = random.Random(3)
    plan = [rng.choice(points) for _ in range(total)]
    posted: list[str] = []
    durations: list[float] = []
    lateness: list[float] = []
    failures = [0]
    lock = threading.Lock()
    next_index = [0]
    start = time.monotonic() + 0.2

    def worker():
        session = requests.Session()
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= total:
                return
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            try:
                case_id = _post(session, base, token, *plan[i])
            except Exception:
                with lock:
                    failures[0] += 1
                continue
            with lock:
                posted.append(case_id)
                durations.append((time.monotonic() - sent) * 1000)
                lateness.append(max(0.0, sent - (start + i / rate)) * 1000)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    offered = total / max(1e-9, time.monotonic() - start)
    if durations:
        note(f"latency run client: POST p50 {percentile(durations, 50):.1f} ms, "
             f"p99 {percentile(durations, 99):.1f} ms; sent late by p50 {percentile(lateness, 50):.1f} ms, "
             f"p99 {percentile(lateness, 99):.1f} ms")
    return posted, failures[0], offered


def _latencies(engines: dict, case_ids: list[str]) -> list[float]:
    ids = list(case_ids)
    with engines["intake"].connect() as db:
        reported = dict(db.execute(sa.text("SELECT id, reported_at FROM reports WHERE id = ANY(:ids)"),
                                   {"ids": ids}).all())
    with engines["escalation"].connect() as db:
        opened = dict(db.execute(sa.text("SELECT id, opened_at FROM cases WHERE id = ANY(:ids)"),
                                 {"ids": ids}).all())
    return [(opened[i] - reported[i]).total_seconds() * 1000 for i in ids if i in opened and i in reported]


def _stages(engines: dict, case_ids: list[str]) -> str:
    """Where the latency goes, per hop, from the timestamps the services write (medians, ms)."""
    ids = list(case_ids)
    case_of = "(body::json -> 'payload' ->> 'case_id')"
    query = {
        "intake": f"SELECT r.id, r.reported_at, o.sent_at FROM reports r JOIN outbox o ON {case_of} = r.id "
                  "WHERE r.id = ANY(:ids) AND o.type = 'case.reported'",
        "dispatch": f"SELECT d.case_id, d.dispatched_at, o.sent_at FROM dispatches d "
                    f"JOIN outbox o ON {case_of} = d.case_id "
                    "WHERE d.case_id = ANY(:ids) AND o.type = 'case.dispatched'",
        "escalation": "SELECT id, opened_at, opened_at FROM cases WHERE id = ANY(:ids)",
    }
    times = {}
    for service, sql in query.items():
        with engines[service].connect() as db:
            times[service] = {row[0]: (row[1], row[2]) for row in db.execute(sa.text(sql), {"ids": ids})}
    hops = {"intake relay (reported → confirmed by the broker)": [], "→ dispatched (delivery + dispatch batch)": [],
            "dispatch relay (dispatched → confirmed)": [], "→ opened at level 1 (delivery + escalation batch)": []}
    for i in ids:
        if not all(i in times[s] for s in times):
            continue
        (reported, sent1), (dispatched, sent2) = times["intake"][i], times["dispatch"][i]
        opened = times["escalation"][i][0]
        for hop, (a, b) in zip(hops, ((reported, sent1), (sent1, dispatched), (dispatched, sent2), (sent2, opened)),
                               strict=True):
            hops[hop].append((b - a).total_seconds() * 1000)
    return "latency by hop (median ms; sent_at is stamped after the confirm, so a hop may be negative): " + "; ".join(
        f"{hop} {percentile(values, 50):.1f}" for hop, values in hops.items() if values)


def main() -> None:
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
