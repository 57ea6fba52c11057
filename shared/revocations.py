"""Revoked tokens: a table in every service's database, and the in-process list each request checks.

``gridcase token revoke`` writes one row to the ``revocations`` table of each service's own database
(intake, dispatch and escalation each check every token, and a service reads only its own database):

- by token id: ``token_id`` is the token's ``jti`` claim; that one token is refused;
- by subject: ``subject`` is the token's ``sub`` (the person) and ``issued_before`` the moment of the
  revocation: every token of that person whose ``iat`` is earlier is refused. ``iat`` counts whole
  seconds, so a token issued in the same second as the revocation is refused too; a new token issued
  a second later is accepted.

Each process keeps the list in memory (``Revocations``) and reads only the rows added since its last
read (``id > last``, the primary key) when the copy is older than ``REFRESH_SECONDS``; the read happens
in the request that finds the copy old, under a lock (the other threads wait for it rather than use the
old copy). So a request that arrives more than ``REFRESH_SECONDS`` after the revocation was committed is
refused by every process of every service; a request on a fresh copy costs two dictionary look-ups.
A revocation older than ``MAX_LIFETIME`` + ``LEEWAY`` is not kept in memory: every token it could
concern has expired. When the database cannot be read the request fails with the database's error (the
service answers 503): an unchecked token is never let through.
"""
from __future__ import annotations

import math
import threading
import time
from datetime import datetime

import sqlalchemy as sa

from shared.auth import LEEWAY, MAX_LIFETIME
from shared.db import UTCDateTime, messaging_metadata

#: How old the in-memory copy may get before a request reads the new rows (seconds): the staleness bound.
REFRESH_SECONDS = 2.0

revocations = sa.Table(
    "revocations", messaging_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("token_id", sa.String(128)),  # a token's jti; or None
    sa.Column("subject", sa.String(128)),  # a person's sub: every token issued before issued_before
    sa.Column("issued_before", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.CheckConstraint("token_id IS NOT NULL OR (subject IS NOT NULL AND issued_before IS NOT NULL)",
                       name="ck_revocations_what"),
)


def revoke(connection: sa.Connection, *, now: datetime, token_id: str | None = None, subject: str | None = None,
           note: str = "") -> None:
    """Record a revocation in ``connection``'s database (the caller commits): ``token_id`` (a ``jti``)
    or ``subject`` (every token of that person issued before ``now``). ValueError without either."""
    if not token_id and not subject:
        raise ValueError("name a token id (jti) or a subject to revoke")
    connection.execute(revocations.insert().values(
        token_id=token_id or None, subject=subject or None, issued_before=now if subject else None,
        revoked_at=now, note=note))


class Revocations:
    """The revocations of one database, kept in memory: ``revoked(token_id, subject, issued_at)``."""

    def __init__(self, engine: sa.Engine, *, refresh_seconds: float = REFRESH_SECONDS, monotonic=time.monotonic,
                 wall=time.time):
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._monotonic, self._wall = monotonic, wall
        self._ids: set[str] = set()
        self._subjects: dict[str, float] = {}  # subject → tokens issued before this (epoch seconds) are revoked
        self._last = 0
        self._fresh_until = -math.inf
        self._lock = threading.Lock()

    def revoked(self, token_id: str | None, subject: str, issued_at: float) -> bool:
        """Whether a token with this ``jti`` (or None), ``sub`` and ``iat`` (epoch seconds) is revoked.
        Reads the new rows first when the copy is older than ``refresh_seconds`` (raises what the
        database raises when it cannot)."""
        if self._monotonic() >= self._fresh_until:
            self._refresh()
        return (token_id is not None and token_id in self._ids) or issued_at < self._subjects.get(subject, -math.inf)

    def _refresh(self) -> None:
        with self._lock:
            started = self._monotonic()
            if started < self._fresh_until:
                return  # another thread read them while this one waited
            oldest = self._wall() - (MAX_LIFETIME + LEEWAY).total_seconds()
            with self.engine.connect() as connection:
                rows = connection.execute(sa.select(revocations).where(revocations.c.id > self._last)
                                          .order_by(revocations.c.id)).all()
            for row in rows:
                self._last = row.id
                if row.revoked_at.timestamp() < oldest:
                    continue  # every token it concerns has expired
                if row.token_id is not None:
                    self._ids.add(row.token_id)
                if row.subject is not None and row.issued_before is not None:
                    before = row.issued_before.timestamp()
                    self._subjects[row.subject] = max(before, self._subjects.get(row.subject, -math.inf))
            self._fresh_until = started + self.refresh_seconds
