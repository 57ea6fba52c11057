"""Production processes: one service's API under gunicorn, or one service's background workers.

Both bring the service's schema up to date first (in the gunicorn master, before forking), and
open no connection before the fork: each gunicorn worker builds its own app and engine.
"""
from __future__ import annotations

import importlib
import signal
import threading

from gunicorn.app.base import Application

from shared import bus, logs
from shared.config import Settings
from shared.db import make_engine
from shared.migrations import upgrade
from shared.runtime import Runner, freeze_startup_heap

log = logs.get("gridcase")


def _bootstrap(service: str):
    return importlib.import_module(f"services.{service}.bootstrap")


class _Gunicorn(Application):  # Application: BaseApplication cannot read a config file
    """Our defaults, then the config file if one is given, then the command line's bind and workers."""

    def __init__(self, factory, defaults: dict, overrides: dict, config_file: str | None):
        self.factory = factory
        self.defaults, self.overrides, self.config_file = defaults, overrides, config_file
        super().__init__()

    def load_config(self):
        for key, value in self.defaults.items():
            self.cfg.set(key, value)
        if self.config_file:
            self.load_config_from_file(self.config_file)
        for key, value in self.overrides.items():
            self.cfg.set(key, value)

    def load(self):
        app = self.factory()
        freeze_startup_heap()
        return app


def announce_broker(settings: Settings) -> None:
    """Log which nodes of the broker URL answer now (a node that does not is named; starting goes on)."""
    if not settings.embedded:
        states = bus.probe(settings.broker_url)
        log.info("broker nodes", up=sum(error is None for error in states.values()), listed=len(states))


#: gunicorn's worker class per service. Escalation's live feed holds a connection per open board for up to
#: 25 s (services/escalation/live.py): gevent serves each as a greenlet, a few kilobytes, instead of a
#: thread or a whole sync worker; its database work goes through the process's connection budget
#: (``GRIDCASE_DB_POOL_SIZE`` + ``GRIDCASE_DB_MAX_OVERFLOW``). The others answer short requests: sync.
WORKER_CLASS = {"escalation": "gevent"}
#: Connections one gevent worker serves at once (gunicorn's ``worker_connections``): boards and requests.
STREAMS_PER_WORKER = 4000


def serve_service(service: str, settings: Settings, *, bind: str, workers: int, config_file: str | None = None) -> None:
    announce_broker(settings)
    engine = make_engine(settings.database_url(service))
    upgrade(engine, service)
    engine.dispose()
    factory = lambda: _bootstrap(service).build(settings, migrate=False).app  # noqa: E731 (after the fork)
    from shared.web import GUNICORN_SETTINGS

    defaults = {"worker_class": WORKER_CLASS.get(service, "sync"), "worker_connections": STREAMS_PER_WORKER,
                "timeout": 60, "graceful_timeout": 20, "keepalive": 5, "accesslog": None,
                "control_socket_disable": True, **GUNICORN_SETTINGS}
    if settings.metrics_dir:
        defaults["child_exit"] = _metrics_child_exit
    _Gunicorn(factory, defaults, {"bind": bind, "workers": workers, "proc_name": f"gridcase-{service}"},
              config_file).run()


def _metrics_child_exit(_server, worker) -> None:
    """A dead worker's metrics files stop counting as live (prometheus_client multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


#: Escalation's workers that run as processes of their own: the deadline scheduler and the notifier.
OWN_PROCESS = ("scheduler", "notify")


def run_worker(name: str, settings: Settings) -> None:
    """``intake|dispatch|escalation``: that service's consumers and relay; ``scheduler``: deadlines;
    ``notify``: the notifier."""
    service_name = "escalation" if name in OWN_PROCESS else name
    announce_broker(settings)
    service = _bootstrap(service_name).build(settings, web=False)
    if name in OWN_PROCESS:
        factories = {name: service.workers[name]}
    else:
        factories = {k: v for k, v in service.workers.items() if k not in OWN_PROCESS}
    runner = Runner()
    for worker_name, factory in factories.items():
        runner.start(f"{service_name}.{worker_name}", factory())
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    log.info("worker running", worker=name, threads=sorted(factories))
    while not stopped.wait(1.0):
        try:
            runner.alive()
        except RuntimeError:
            log.exception("a worker thread died; exiting so the supervisor restarts the process")
            break
    runner.stop()
    service.engine.dispose()
