"""Gunicorn settings for `gridcase serve <service> --config deploy/gunicorn.conf.py` (production; the
embedded `gridcase up` does not use them). The command line's --host/--port/--workers win over `bind` and
`workers` here.

Everything comes from the environment, so one image serves every service:

    GRIDCASE_BIND          address to listen on (default 0.0.0.0:8000)
    GRIDCASE_WEB_WORKERS   worker processes (default 2)
    GRIDCASE_WEB_WORKER_CLASS  gunicorn's worker class (default: `gridcase serve`'s: gevent for escalation,
                           sync for the others; GRIDCASE_WEB_THREADS > 1 without it: gthread)
    GRIDCASE_WEB_THREADS   threads per worker of a gthread worker
    GRIDCASE_WEB_CONNECTIONS  connections one gevent worker serves at once (default 4000)
    GRIDCASE_DB_POOL_SIZE, GRIDCASE_DB_MAX_OVERFLOW  (read by the application, listed here for the sum)
                           each worker process keeps POOL_SIZE connections to its database open and opens
                           up to MAX_OVERFLOW more under load (defaults 5 and 10): a service's budget on
                           PostgreSQL is workers × (POOL_SIZE + MAX_OVERFLOW), to be kept under the
                           server's max_connections with the other services and workers
    GRIDCASE_WEB_TIMEOUT   seconds before a silent worker is killed and replaced (default 30)
    GRIDCASE_LOG_LEVEL     gunicorn's error-log level (default info)
    PROMETHEUS_MULTIPROC_DIR  when set, metrics are aggregated over the workers (prometheus_client
                           multiprocess mode); the directory is emptied at start and dead workers' files
                           are marked dead.

Sync workers were measured as the stable choice on these machines (gthread's keep-alive connections stick
to one worker under load, see shared/docs/RUNBOOK.md); nginx in front does the keep-alive. The exception is
escalation, whose live feed (GET /escalation/v1/cases/events, Server-Sent Events) holds a connection per open
board: it runs gevent workers, each stream a greenlet, and one tailer per worker process reads the timeline
for all of them (services/escalation/live.py), so its database load follows the processes, not the screens.
Each stream ends after 25 s and the board resumes it with Last-Event-ID from any replica.
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
worker_connections = _int("GRIDCASE_WEB_CONNECTIONS", 4000)
if os.environ.get("GRIDCASE_WEB_WORKER_CLASS", "").strip():
    worker_class = os.environ["GRIDCASE_WEB_WORKER_CLASS"].strip()
elif threads > 1:
    worker_class = "gthread"
# else: `gridcase serve`'s default for the service (gevent for escalation, sync for the others)

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
