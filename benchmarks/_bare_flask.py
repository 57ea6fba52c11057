"""The intake benchmark's raw baselines under gunicorn, with the same gunicorn settings ``gridcase serve``
uses (gridcase/production.py: sync workers, timeout, keepalive, no access log):

- bare: a Flask JSON POST echo endpoint (parse the body, answer it with 201);
- ``--durable URL``: the floor of any durable accept path on this stack: Flask parses the body and stores it
  with one statement through psycopg on a connection of the worker's own (autocommit: one round trip and
  one commit, flushed to the WAL as every report is), then answers the stored row's id with 201. No
  validation, authentication, limits, idempotency, outbox or ORM: what is left is what gunicorn, Flask,
  psycopg and PostgreSQL cost for one durable write.

    python -m benchmarks._bare_flask --fd N --workers 2 [--durable postgresql://...]
        (N: an inherited listening socket, as harness.processes passes it; or --bind 127.0.0.1:PORT)
"""
from __future__ import annotations

import argparse

import psycopg
from flask import Flask, jsonify, request
from gunicorn.app.base import BaseApplication
from psycopg.types.json import Jsonb

FLOOR_TABLE = "CREATE TABLE IF NOT EXISTS floor_reports (id bigserial PRIMARY KEY, body jsonb NOT NULL, " \
              "received_at timestamptz NOT NULL DEFAULT now())"


def create_app(durable: str | None = None) -> Flask:
    app = Flask("bare")
    connection = None  # the worker's own, made on its first request (after gunicorn's fork)

    @app.post("/intake/v1/reports")
    def echo():
        nonlocal connection
        body = request.get_json()
        if durable:
            if connection is None:
                connection = psycopg.connect(durable, autocommit=True)
            stored = connection.execute("INSERT INTO floor_reports (body) VALUES (%s) RETURNING id",
                                        (Jsonb(body),)).fetchone()[0]
            body = {"id": stored, **body}
        response = jsonify(body)
        response.status_code = 201
        return response

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict, durable: str | None):
        self.options = options
        self.durable = durable
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app(self.durable)


def main() -> None:
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bind")
    where.add_argument("--fd", type=int, help="an inherited, already listening socket")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--durable", help="a PostgreSQL URL: store each body there (the floor)")
    args = parser.parse_args()
    if args.durable:
        with psycopg.connect(args.durable, autocommit=True) as connection:
            connection.execute(FLOOR_TABLE)
    _Gunicorn({"bind": args.bind or f"fd://{args.fd}", "workers": args.workers, "worker_class": "sync", "timeout": 60,
               "graceful_timeout": 20, "keepalive": 5, "accesslog": None, "proc_name": "gridcase-bench-bare",
               "control_socket_disable": True}, args.durable).run()


if __name__ == "__main__":
    main()
