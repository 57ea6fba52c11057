"""The subscriptions and the notifications outbox, declared on escalation's metadata by its store
(``declare``), so they migrate with it: a notification row is written in the transaction of the step
that causes it."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime


def declare(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The ``subscriptions`` and ``notifications`` tables on ``metadata``."""
    return _subscriptions(metadata), _notifications(metadata)


def _subscriptions(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "subscriptions", metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("unit", sa.String(64)),  # an area id or a department id
        sa.Column("user", sa.String(128)),
        sa.Column("role", sa.String(16)),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2000)),
        sa.Column("secret", sa.String(200)),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("quiet_hours", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )

def _notifications(metadata: sa.MetaData) -> sa.Table:
    """One row per (event, subscriber): the key makes a second row for the same pair fail. ``status``:
    ``pending`` (the notifier delivers it at ``next_attempt_at``), ``sent``, ``dead`` (given up), ``inapp``
    (the bell: read by the caller, ``read_at`` once seen). Times are real UTC time (the notifier's), except
    ``payload.at`` (the step's service time)."""
    return sa.Table(
        "notifications", metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        # a subscription's id, or a default rule's and its inbox (``default.assigned:unit:S1``)
        sa.Column("subscription_id", sa.String(100), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(36)),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(200)),  # in-app: unit:<id>, role:<role> or user:<name>
        # the person whose own step it tells of (``outbox.caused_by``): their bell leaves it out
        sa.Column("caused_by", sa.String(128)),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("read_at", UTCDateTime),
        sa.Column("last_error", sa.String(500)),
        sa.UniqueConstraint("event_id", "subscription_id", name="uq_notifications_event_subscriber"),
        # The notifier reads only what is pending: its cost follows the waiting rows, not every row ever sent.
        sa.Index("ix_notifications_pending", "next_attempt_at", postgresql_where=sa.text("status = 'pending'"),
                 sqlite_where=sa.text("status = 'pending'")),
        sa.Index("ix_notifications_inbox", "recipient", "id", postgresql_where=sa.text("status = 'inapp'"),
                 sqlite_where=sa.text("status = 'inapp'")),
    )
