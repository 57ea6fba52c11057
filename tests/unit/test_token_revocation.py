"""Revoked tokens: by token id or by subject, checked on every read (cached or not), with a bounded
staleness; a database that cannot be read lets no token through."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import sqlalchemy as sa

from shared import revocations
from shared.auth import AuthError, TokenVerifier, issue_token
from shared.db import messaging_metadata
from shared.revocations import Revocations, revoke

SECRET = "revocation-test-secret-of-32-bytes!"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Ticks:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/r.db")
    messaging_metadata.create_all(engine, tables=[revocations.revocations])
    yield engine
    engine.dispose()


def record(engine, **what):
    with engine.begin() as connection:
        revoke(connection, **{"now": datetime.now(UTC), **what})


def test_every_token_carries_its_own_id():
    a, b = (jwt.decode(issue_token(SECRET, "command"), SECRET, algorithms=["HS256"]) for _ in range(2))
    assert len(a["jti"]) == 32 and a["jti"] != b["jti"]


def test_a_token_revoked_by_id_is_refused_and_no_other(engine):
    verifier = TokenVerifier(SECRET, revoked=Revocations(engine).revoked)
    mine, other = issue_token(SECRET, "command", user="li"), issue_token(SECRET, "command", user="li")
    assert verifier.read(mine).user == "li"  # verified once and cached
    record(engine, token_id=jwt.decode(mine, SECRET, algorithms=["HS256"])["jti"])
    verifier.revoked.__self__._fresh_until = 0  # past the refresh interval
    with pytest.raises(AuthError, match="revoked"):
        verifier.read(mine)  # from the cache of verified tokens: still asked
    assert verifier.read(other).user == "li"


def test_revoking_a_subject_refuses_its_tokens_issued_before_and_accepts_later_ones(engine):
    ticks = Ticks()
    verifier = TokenVerifier(SECRET, revoked=Revocations(engine, monotonic=ticks).revoked)
    now = datetime.now(UTC)
    before = issue_token(SECRET, "grid_worker", area="G1", user="wang", now=now - timedelta(seconds=5))
    someone_else = issue_token(SECRET, "grid_worker", area="G1", user="zhao", now=now - timedelta(seconds=5))
    record(engine, subject="wang", now=now)
    after = issue_token(SECRET, "grid_worker", area="G1", user="wang", now=now + timedelta(seconds=1))
    with pytest.raises(AuthError, match="revoked"):
        verifier.read(before)
    assert verifier.read(after).user == "wang" and verifier.read(someone_else).user == "zhao"


def test_a_revocation_is_seen_once_the_copy_is_older_than_the_bound_and_not_read_before(engine):
    ticks = Ticks()
    list_ = Revocations(engine, refresh_seconds=2.0, monotonic=ticks)
    reads = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: reads.append(1))
    assert not list_.revoked("t1", "li", 0) and len(reads) == 1
    record(engine, token_id="t1")
    reads.clear()
    ticks.now += 1.9
    assert not list_.revoked("t1", "li", 0) and reads == [], "within the bound: no query, the old copy"
    ticks.now += 0.1
    assert list_.revoked("t1", "li", 0), "at the bound: read again"
    record(engine, token_id="t2")
    ticks.now += 2.0
    reads.clear()
    assert list_.revoked("t2", "li", 0) and list_.revoked("t1", "li", 0)
    assert len(reads) == 1, "only the rows added since the last read"


def test_revocations_older_than_any_token_are_not_kept(engine):
    with engine.begin() as connection:
        revoke(connection, now=datetime.now(UTC) - timedelta(days=31), token_id="old")
        revoke(connection, now=datetime.now(UTC) - timedelta(days=29), token_id="recent")
    list_ = Revocations(engine)
    assert list_.revoked("recent", "x", 0) and not list_.revoked("old", "x", 0)
    assert list_._ids == {"recent"}


def test_an_unreadable_list_lets_no_token_through(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/empty.db")  # no revocations table
    verifier = TokenVerifier(SECRET, revoked=Revocations(engine).revoked)
    with pytest.raises(sa.exc.OperationalError):  # the web layer answers 503
        verifier.read(issue_token(SECRET, "command"))
    engine.dispose()


def test_threads_that_find_the_copy_old_wait_for_one_read(engine):
    ticks = Ticks()
    list_ = Revocations(engine, monotonic=ticks)
    list_.revoked(None, "x", 0)
    record(engine, token_id="t1")
    ticks.now += 5
    reads = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: reads.append(1))
    results = []
    threads = [threading.Thread(target=lambda: results.append(list_.revoked("t1", "x", 0))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8 and len(reads) == 1


@pytest.mark.parametrize("jti", [7, "", "x" * 129])
def test_a_malformed_jti_is_refused(jti):
    now = datetime.now(UTC)
    token = jwt.encode({"sub": "li", "role": "command", "iat": now, "exp": now + timedelta(hours=1), "jti": jti},
                       SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match="jti|JWT ID"):
        TokenVerifier(SECRET).read(token)


def test_a_revocation_names_what_it_revokes(engine):
    with engine.begin() as connection, pytest.raises(ValueError, match="token id"):
        revoke(connection, now=T0)
