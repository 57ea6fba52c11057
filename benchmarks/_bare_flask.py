"""The intake benchmark's raw baseline: a bare Flask JSON POST echo endpoint under gunicorn, with the same
gunicorn settings ``gridcase serve`` uses (gridcase/production.py: sync workers, timeout, keepalive, no
access log).

    python -m benchmarks._bare_flask --bind 127.0.0.1:PORT --workers 2
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
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    _Gunicorn({"bind": args.bind, "workers": args.workers, "worker_class": "sync", "timeout": 60,
               "graceful_timeout": 20, "keepalive": 5, "accesslog": None, "proc_name": "gridcase-bench-bare",
               "control_socket_disable": True}).run()


if __name__ == "__main__":
    main()
