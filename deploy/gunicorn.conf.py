"""Gunicorn settings for `gridcase serve <service> --config deploy/gunicorn.conf.py` (production; the
embedded `gridcase up` does not use them). The command line's --host/--port/--workers win over `bind` and
`workers` here.

Everything comes from the environment, so one image serves every service:

    GRIDCASE_BIND          address to listen on (default 0.0.0.0:8000)
    GRIDCASE_WEB_WORKERS   worker processes (default 2)
    GRIDCASE_WEB_THREADS   threads per worker (default 1: `sync` workers; more: `gthread`)
    GRIDCASE_WEB_TIMEOUT   seconds before a silent worker is killed and replaced (default 30)
    GRIDCASE_LOG_LEVEL     gunicorn's error-log level (default info)
    PROMETHEUS_MULTIPROC_DIR  when set, metrics are aggregated over the workers (prometheus_client
                           multiprocess mode); the directory is emptied at start and dead workers' files
                           are marked dead.

Sync workers were measured as the stable choice on these machines (gthread's keep-alive connections stick
to one worker under load, see shared/docs/RUNBOOK.md); nginx in front does the keep-alive. The exception is
escalation, whose live feed (GET /escalation/v1/cases/events, Server-Sent Events) holds a connection per open
board: docker-compose.yml gives it GRIDCASE_WEB_THREADS=16 (gthread). Each stream ends after 25 s
(services/escalation/live.py) and the board resumes it with Last-Event-ID, so even a sync worker is never
held past its timeout — only busy for that long.
"""
from __future__ import annotations

import os
from pathlib import Path


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, not {raw!r}") from exc
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, not {value}")
    return value


bind = os.environ.get("GRIDCASE_BIND", "0.0.0.0:8000")
workers = _int("GRIDCASE_WEB_WORKERS", 2)
threads = _int("GRIDCASE_WEB_THREADS", 1)
worker_class = "sync" if threads == 1 else "gthread"

timeout = _int("GRIDCASE_WEB_TIMEOUT", 30)
graceful_timeout = 30
keepalive = 5
# Heartbeat files on tmpfs: a worker touching a file on a slow overlay file system can be taken for dead.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GRIDCASE_LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}i)s'

# Request line and header limits, the same in the embedded server and nginx (shared/web.py); bodies are
# limited per route by the application (BODY_LIMITS, 413 problem) and by the gateway with the same numbers.
# gunicorn's own refusals (414, 431, 400) are answered as application/problem+json (post_worker_init).
from shared.web import GUNICORN_SETTINGS  # noqa: E402

limit_request_line = GUNICORN_SETTINGS["limit_request_line"]
limit_request_fields = GUNICORN_SETTINGS["limit_request_fields"]
limit_request_field_size = GUNICORN_SETTINGS["limit_request_field_size"]
post_worker_init = GUNICORN_SETTINGS["post_worker_init"]


def on_starting(server):
    """Empty the metrics directory: files left by an earlier run would be summed into this one's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker):
    """Tell prometheus_client a worker is gone, so its live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
