"""The intake benchmark's raw baseline: a bare Flask JSON POST echo endpoint under gunicorn, with the same
gunicorn settings ``gridcase serve`` uses (gridcase/production.py: sync workers, timeout, keepalive, no
access log).

    python -m benchmarks._bare_flask --fd N --workers 2      (N: an inherited listening socket, as harness.processes
                                                             passes it; or --bind 127.0.0.1:PORT)
"""
from __future__ import annotations

import argparse

from flask import Flask, jsonify, request
from gunicorn.app.base import BaseApplication


def create_app() -> Flask:
    app = Flask("bare")

    @app.post("/intake/v1/reports")
    def echo():
        response = jsonify(request.get_json())
        response.status_code = 201
        return response

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app()


def main() -> None:
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bind")
    where.add_argument("--fd", type=int, help="an inherited, already listening socket")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    _Gunicorn({"bind": args.bind or f"fd://{args.fd}", "workers": args.workers, "worker_class": "sync", "timeout": 60,
               "graceful_timeout": 20, "keepalive": 5, "accesslog": None, "proc_name": "gridcase-bench-bare",
               "control_socket_disable": True}).run()


if __name__ == "__main__":
    main()
