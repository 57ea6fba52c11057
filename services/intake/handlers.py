"""Intake's use cases."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from services.intake import store
from services.intake.domain.reports import IdempotencyConflict, NewReport, UnknownCategory, report_number
from shared import outbox
from shared.clock import Clock, isoformat
from shared.messages import make_message
from shared.policy import Policy


def submit_report(report: NewReport, *, reporter: str, idempotency_key: str | None, engine: sa.Engine,
                  clock: Clock, policy: Policy):
    """Store a report and its ``case.reported`` in one transaction; returns ``(row, created)``.

    A retry with the same key and the same report returns the stored one; the same key with a
    different report raises ``IdempotencyConflict``. Two concurrent requests with one key race on
    the unique constraint, and the loser reads the winner's row.
    """
    if report.category not in policy.categories:
        raise UnknownCategory(report.category)
    fingerprint = report.fingerprint()
    if idempotency_key:
        with engine.begin() as connection:
            existing = store.find_by_key(connection, reporter, idempotency_key)
        if existing is not None:
            return _same_or_conflict(existing, fingerprint), False
    try:
        return _insert(report, reporter, idempotency_key, fingerprint, engine, clock, policy), True
    except sa.exc.IntegrityError:
        if not idempotency_key:
            raise
        with engine.begin() as connection:
            existing = store.find_by_key(connection, reporter, idempotency_key)
        return _same_or_conflict(existing, fingerprint), False


def _same_or_conflict(row, fingerprint: str):
    if row.fingerprint != fingerprint:
        raise IdempotencyConflict(row.id)
    return row


def _insert(report, reporter, idempotency_key, fingerprint, engine, clock, policy):
    now = clock.now()
    case_id = str(uuid.uuid4())
    severity = policy.category(report.category).severity
    with engine.begin() as connection:
        seq = connection.execute(store.reports.insert().values(
            id=case_id, idempotency_key=idempotency_key, reporter=reporter, fingerprint=fingerprint,
            category=report.category, severity=severity, description=report.description,
            lon=report.lon, lat=report.lat, status="reported", reported_at=now, updated_at=now,
        )).inserted_primary_key[0]
        number = report_number(seq, now)
        connection.execute(store.reports.update().where(store.reports.c.seq == seq).values(number=number))
        outbox.add(connection, make_message("case.reported", {
            "case_id": case_id, "number": number, "category": report.category, "severity": severity,
            "description": report.description, "location": {"lon": report.lon, "lat": report.lat},
            "reporter": reporter, "reported_at": isoformat(now),
        }, occurred_at=now, producer="intake", correlation_id=case_id))
        return store.get(connection, case_id)


LEVEL_NUMBERS = {"grid": 1, "station": 2, "subcenter": 3, "hq": 4}


def follow_case(db: sa.Connection, envelope, payload: dict, *, clock: Clock) -> None:
    """Escalation and dispatch events → the status a grid worker sees on their report."""
    values = {"updated_at": clock.now()}
    if envelope.type == "case.transferred":
        if payload.get("level"):
            values.update(level=LEVEL_NUMBERS[payload["level"]], owner_area_id=payload[payload["level"]]["id"])
    else:
        values.update(status=payload["status"], level=payload["level"], owner_area_id=payload["owner"]["area_id"])
    db.execute(store.reports.update().where(store.reports.c.id == payload["case_id"]).values(**values))
