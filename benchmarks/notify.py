"""Notification benchmark: webhook notifications delivered per second by the notifier, against the same
POSTs sent straight to the same receivers.

    python -m benchmarks.notify [--quick]

Set-up: E receivers (20) on loopback, each its own ``ThreadingHTTPServer`` answering ``200`` at once, so
each is an endpoint of its own (its own circuit); one webhook subscription per receiver; N notifications
(4,000; quick 800) written pending, spread over the subscriptions, in escalation's schema on SQLite (the
embedded system's database). Then one notifier (``services.escalation.notify.worker.Notifier``, its
defaults: 8 delivery threads, 3 notifications an endpoint at a time) runs until every one is ``sent``.
Figure: N ÷ (last ``sent_at`` − start). Raw baseline, same run: the same N signed JSON bodies POSTed
with ``requests`` from 8 threads to the same receivers, as fast as possible. Ratio = ours ÷ raw.
"""
from __future__ import annotations

import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import sqlalchemy as sa

from benchmarks._support import Figure, emit, note, sigterm_as_exit


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def run(quick: bool = False) -> list[Figure]:
    from services.escalation import bootstrap
    from services.escalation.notify.worker import Notifier
    from services.escalation.store import notifications
    from shared.config import Settings

    count, endpoints = (800, 20) if quick else (4_000, 20)
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(endpoints)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{s.server_address[1]}/hook" for s in servers]
    try:
        raw = _raw(urls, count)
        with tempfile.TemporaryDirectory() as data:
            settings = Settings(data_dir=Path(data), secret="bench-" + "x" * 32, notify_allow_private=True)
            service = bootstrap.build(settings, web=False)
            now = datetime.now(UTC)
            with service.uow() as uow:
                ids = [uow.store.notifications.add_subscription(
                    {"role": "station", "events": ["assigned"], "channel": "webhook", "target": url,
                     "secret": "s" * 32, "language": "zh", "quiet_hours": False}, "bench", now) for url in urls]
                uow.store.notifications.add([
                    {"event_id": f"bench-{n}", "subscription_id": ids[n % endpoints], "event": "assigned",
                     "case_id": None, "channel": "webhook", "recipient": None, "language": "zh",
                     "payload": {"id": f"bench-{n}", "event": "assigned", "case": None, "n": n},
                     "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
                    for n in range(count)])
                uow.commit()
            notifier = Notifier(service)
            started = time.perf_counter()
            thread = threading.Thread(target=notifier.run, daemon=True)
            thread.start()
            n = notifications.c
            while True:
                with service.engine.connect() as db:
                    left = db.execute(sa.select(sa.func.count()).where(n.status == "pending")).scalar_one()
                if not left:
                    break
                time.sleep(0.05)
            seconds = time.perf_counter() - started
            notifier.stop()
            thread.join(10)
            with service.engine.connect() as db:
                sent = db.execute(sa.select(sa.func.count()).where(n.status == "sent")).scalar_one()
            service.engine.dispose()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    ours = count / seconds
    note(f"notify: {count} webhook notifications to {endpoints} receivers on loopback, SQLite; {sent} sent")
    return [("notify.raw_post", round(raw, 1), "posts/s", None),
            ("notify.webhooks_per_s", round(ours, 1), "notifications/s", round(ours / raw, 3))]


def _raw(urls: list[str], count: int) -> float:
    body = b'{"id":"raw","event":"assigned"}'

    def post(n: int) -> None:
        requests.post(urls[n % len(urls)], data=body, timeout=10,
                      headers={"Content-Type": "application/json", "Gridcase-Event-Id": f"raw-{n}"}).close()

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(count)))
    return count / (time.perf_counter() - started)


if __name__ == "__main__":
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv))
