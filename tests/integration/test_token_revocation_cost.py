"""Checking revoked tokens costs a request no database query: each process reads the revocations table
once per ``REFRESH_SECONDS`` (only the rows added since), whatever the number of requests, and still
refuses a token revoked since (``shared/revocations.py``). Over real HTTP, on intake's app as
``gridcase serve`` builds it, on SQLite and PostgreSQL; every statement on the revocations table is
counted with a SQLAlchemy event listener. The bound is by elapsed time, not by speed, so a slow machine
loosens it without failing the test."""
from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime

import jwt
import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from harness.processes import wait_for
from services.intake import bootstrap
from shared.auth import issue_token
from shared.config import Settings
from shared.revocations import REFRESH_SECONDS, revoke
from tests.support.system import database_url

SECRET = "revocation-cost-secret-of-32-bytes!"
REQUESTS = 300
PEOPLE = 20


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    with database_url(request.param, tmp_path, "revocost") as found:
        yield found


@pytest.fixture
def intake(url, tmp_path):
    """Intake's web app served over HTTP on a free port: (base URL, its service)."""
    service = bootstrap.build(Settings(database_urls={"intake": url}, secret=SECRET,
                                       photo_dir=tmp_path / "photos"))
    server = make_server("127.0.0.1", 0, service.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", service
    server.shutdown()
    thread.join(10)
    service.engine.dispose()


def test_checking_revocations_reads_the_database_once_per_interval_never_per_request(intake):
    base, service = intake
    reads = []

    def count(_connection, _cursor, statement, *_):
        if "revocations" in statement:
            reads.append(time.monotonic())

    sa.event.listen(service.engine, "before_cursor_execute", count)
    tokens = [issue_token(SECRET, "command", user=f"person-{i}") for i in range(PEOPLE)]
    with requests.Session() as http:
        get = lambda n: http.get(f"{base}/intake/v1/reports?mine=1", timeout=30,  # noqa: E731
                                 headers={"Authorization": f"Bearer {tokens[n % PEOPLE]}"})
        assert get(0).status_code == 200  # the list is loaded
        loaded = len(reads)
        started = time.monotonic()
        answers = [get(n).status_code for n in range(REQUESTS)]
        elapsed = time.monotonic() - started

        assert answers == [200] * REQUESTS
        assert loaded >= 1, "the first request read the list"
        during = len(reads) - loaded
        assert during <= math.ceil(elapsed / REFRESH_SECONDS) + 1, (
            f"{during} reads of the revocations table in {REQUESTS} requests over {elapsed:.1f} s: "
            f"at most one per {REFRESH_SECONDS} s")

        # Still checked on every request: a token revoked now is refused once the copy is older than the bound.
        jti = jwt.decode(tokens[0], SECRET, algorithms=["HS256"])["jti"]
        with service.engine.begin() as connection:
            revoke(connection, now=datetime.now(UTC), token_id=jti)
        wait_for(lambda: get(0).status_code == 401, REFRESH_SECONDS + 30, 0.2, "the revoked token refused")
        assert get(1).status_code == 200
