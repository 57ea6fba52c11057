"""psycopg 3 under gevent, as the escalation API runs it: psycopg imported before the worker patches (the
gunicorn master migrates first), then patched. Two greenlets' queries must wait for PostgreSQL at once —
psycopg's C wait function would block the whole process, one query after the other."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from harness.processes import ROOT

pytestmark = pytest.mark.postgres

SCRIPT = textwrap.dedent("""
    import sys, time
    import psycopg                      # as in the gunicorn master, before the fork
    from shared.db import make_engine
    from gevent import monkey
    monkey.patch_all()                  # what gunicorn's gevent worker does after the fork
    import gevent, sqlalchemy as sa

    engine = make_engine(sys.argv[1], pool_size=2, max_overflow=0)

    def sleep():
        with engine.connect() as db:
            db.execute(sa.text("SELECT pg_sleep(1)"))

    sleep()  # connect once, so that only the queries are timed
    started = time.monotonic()
    gevent.joinall([gevent.spawn(sleep), gevent.spawn(sleep)], raise_error=True)
    print(f"{time.monotonic() - started:.2f}")
""")


def test_two_greenlets_wait_for_postgresql_at_once(postgres_url):
    done = subprocess.run([sys.executable, "-c", SCRIPT, postgres_url], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    elapsed = float(done.stdout.strip().splitlines()[-1])
    assert elapsed < 1.7, f"two 1 s queries took {elapsed} s: they ran one after the other"
