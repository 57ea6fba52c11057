"""Intake's use cases."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import sqlalchemy as sa

from services.intake import store
from services.intake.domain.reports import IdempotencyConflict, NewReport, UnknownCategory, report_number
from shared import outbox
from shared.clock import Clock, isoformat
from shared.messages import make_message
from shared.policy import Policy


@dataclass(frozen=True)
class Submitted:
    row: sa.Row
    created: bool


def submit_report(report: NewReport, *, reporter: str, idempotency_key: str | None,
                  writer: store.ReportWriter, clock: Clock, policy: Policy) -> Submitted:
    """Store a report and its ``case.reported`` atomically.

    A retry with the same key and the same report returns the stored one; the same key with a
    different report raises ``IdempotencyConflict``. The insert itself detects a used key
    (``ON CONFLICT DO NOTHING``), so two concurrent requests with one key make one report.
    """
    if report.category not in policy.categories:
        raise UnknownCategory(report.category)
    fingerprint = report.fingerprint()
    now = clock.now()
    case_id = str(uuid.uuid4())
    severity = policy.category(report.category).severity
    values = {"id": case_id, "idempotency_key": idempotency_key, "reporter": reporter, "fingerprint": fingerprint,
              "category": report.category, "severity": severity, "description": report.description,
              "lon": report.lon, "lat": report.lat, "status": "reported", "reported_at": now, "updated_at": now}


    def message_for(seq: int):
        return make_message("case.reported", {
            "case_id": case_id, "number": report_number(seq, now), "category": report.category,
            "severity": severity, "description": report.description,
            "location": {"lon": report.lon, "lat": report.lat}, "reporter": reporter, "reported_at": isoformat(now),
        }, occurred_at=now, producer="intake", correlation_id=case_id)

    inserted = writer.insert(values, message_for)
    if inserted is None:  # the key was used before (or by a concurrent request, now committed)
        if idempotency_key is None:
            raise RuntimeError(f"report {case_id} conflicted without an idempotency key")
        with writer.engine.connect() as db:
            existing = store.find_by_key(db, reporter, idempotency_key)
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict(existing.id)
        return Submitted(existing, created=False)
    outbox.wakeup(writer.engine).set()
    return Submitted(_Row(seq=inserted, level=None, owner_area_id=None, **values), created=True)


class _Row(SimpleNamespace):
    """The row just inserted, without reading it back."""


LEVEL_NUMBERS = {"grid": 1, "station": 2, "subcenter": 3, "hq": 4}


def follow_case(db: sa.Connection, envelope, payload: dict, *, clock: Clock) -> None:
    """Escalation and dispatch events → the status a grid worker sees on their report."""
    values = {"updated_at": clock.now()}
    if envelope.type == "case.dispatched":
        level = payload["start_level"]
        values.update(status="open", level=LEVEL_NUMBERS[level], owner_area_id=payload[level]["id"])
    elif envelope.type == "case.transferred":
        if payload.get("level"):
            values.update(level=LEVEL_NUMBERS[payload["level"]], owner_area_id=payload[payload["level"]]["id"])
    else:
        values.update(status=payload["status"], level=payload["level"], owner_area_id=payload["owner"]["area_id"])
    db.execute(store.reports.update().where(store.reports.c.id == payload["case_id"]).values(**values))
