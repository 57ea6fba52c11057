"""What checking revoked tokens costs a request: ``python -m benchmarks.token_check [--postgres URL]``.

Three figures, each the median of 7 runs of ``timeit`` over 200,000 calls (so per-call times are in
nanoseconds), in one process:

- ``unchecked``: ``TokenVerifier.read`` of a token already verified (the cached path every request of a
  phone takes), with no revocation list — the path before revocations existed;
- ``checked``: the same with the list (``shared.revocations.Revocations``) fresh, 1,000 revocations in it;
- ``refresh``: one read of the new rows when the copy is older than ``REFRESH_SECONDS`` (SQLite file, and
  PostgreSQL when ``--postgres`` or ``GRIDCASE_TEST_POSTGRES_URL`` names an admin URL; a throwaway
  database is made and dropped), spread over the requests of that interval it costs
  ``refresh ÷ (requests per second × REFRESH_SECONDS)`` each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import timeit
import uuid
from datetime import UTC, datetime

from shared.auth import TokenVerifier, issue_token
from shared.db import make_engine, messaging_metadata
from shared.revocations import REFRESH_SECONDS, Revocations, revocations, revoke

SECRET = "benchmark-secret-of-at-least-32-bytes"
CALLS = 200_000


def per_call_ns(function) -> float:
    return statistics.median(timeit.repeat(function, number=CALLS, repeat=7)) / CALLS * 1e9


def refresh_ms(engine) -> float:
    """The median time of one refresh that finds one new row, in milliseconds."""
    messaging_metadata.create_all(engine, tables=[revocations])
    with engine.begin() as connection:
        for i in range(1000):
            revoke(connection, now=datetime.now(UTC), token_id=f"t{i}")
    clock = [0.0]
    listed = Revocations(engine, monotonic=lambda: clock[0])
    listed.revoked(None, "x", 0)
    times = []
    for i in range(50):
        with engine.begin() as connection:
            revoke(connection, now=datetime.now(UTC), token_id=f"n{i}")
        clock[0] += REFRESH_SECONDS
        times.append(timeit.timeit(lambda: listed.revoked(None, "x", 0), number=1))
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("GRIDCASE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    token = issue_token(SECRET, "command", user="li")
    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(f"sqlite:///{directory}/r.db")
        messaging_metadata.create_all(engine, tables=[revocations])
        with engine.begin() as connection:
            for i in range(1000):
                revoke(connection, now=datetime.now(UTC), token_id=uuid.uuid4().hex, subject=f"user{i}")
        unchecked = TokenVerifier(SECRET)
        checked = TokenVerifier(SECRET, revoked=Revocations(engine, refresh_seconds=1e9).revoked)
        unchecked.read(token), checked.read(token)
        plain = per_call_ns(lambda: unchecked.read(token))
        with_list = per_call_ns(lambda: checked.read(token))
        print(f"unchecked  {plain:8.0f} ns per read (a cached token, no revocation list)")
        print(f"checked    {with_list:8.0f} ns per read (+{with_list - plain:.0f} ns: the list asked, fresh)")
        engine.dispose()
        engine = make_engine(f"sqlite:///{directory}/refresh.db")
        print(f"refresh    {refresh_ms(engine):8.3f} ms per read of the new rows, SQLite, every "
              f"{REFRESH_SECONDS:g} s at most")
        engine.dispose()
    if args.postgres:
        from harness.servers import create_database, drop_database

        name = f"gridcase_bench_{uuid.uuid4().hex[:10]}"
        engine = make_engine(create_database(args.postgres, name))
        try:
            print(f"refresh    {refresh_ms(engine):8.3f} ms per read of the new rows, PostgreSQL")
        finally:
            engine.dispose()
            drop_database(args.postgres, name)


if __name__ == "__main__":
    main()
