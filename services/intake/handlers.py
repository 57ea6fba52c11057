"""Intake's use cases: file a report, follow its case as the other services move it."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.intake.domain.reports import (
    IdempotencyConflict,
    NewReport,
    NotAwaitingVerification,
    NotItsGridWorker,
    Report,
    UnknownCategory,
)
from shared.auth import Identity
from shared.clock import Clock
from shared.messages import events
from shared.policy import Policy
from shared.uow import UnitOfWork
from shared.vocabulary import SCOPED_AREA_LEVELS, Role, Status


@dataclass(frozen=True)
class Submitted:
    report: Report
    created: bool


def submit_report(report: NewReport, reporter: str, idempotency_key: str | None, uow: UnitOfWork, *,
                  clock: Clock, policy: Policy, time_zone: str = "UTC") -> Submitted:
    """Store a report and its ``case.reported`` atomically.

    A retry with the same key and the same report returns the stored one; the same key with a
    different report raises ``IdempotencyConflict``. The insert itself detects a used key
    (``ON CONFLICT DO NOTHING``), so two concurrent requests with one key make one report.
    The report number is dated in the city's ``time_zone``.
    """
    if report.category not in policy.categories:
        raise UnknownCategory(report.category)
    now = clock.now()
    with uow:
        stored = Report(id=str(uuid.uuid4()), seq=uow.store.next_seq(), reporter=reporter,
                        idempotency_key=idempotency_key, fingerprint=report.fingerprint(), category=report.category,
                        severity=policy.category(report.category).severity, description=report.description,
                        lon=report.lon, lat=report.lat, status=Status.REPORTED, reported_at=now, updated_at=now)
        uow.store.add(stored)
        uow.add(events.CaseReported(
            case_id=stored.id, number=stored.number_in(time_zone), category=stored.category, severity=stored.severity,
            description=stored.description, location=events.Location(stored.lon, stored.lat), reporter=reporter,
            reported_at=now))
        uow.commit()
        if uow.store.added:
            return Submitted(stored, created=True)
    if idempotency_key is None:
        raise RuntimeError(f"report {stored.id} conflicted without an idempotency key")
    with uow:  # the key was used before (or by a concurrent request, now committed)
        existing = uow.store.by_key(reporter, idempotency_key)
    if existing.fingerprint != stored.fingerprint:
        raise IdempotencyConflict(existing.id)
    return Submitted(existing, created=False)


def follow_case(message: events.Message, uow: UnitOfWork, *, clock: Clock) -> None:
    """Dispatch and escalation events → the status, level and owner a reporter sees on their report."""
    values = {"updated_at": clock.now()}
    match message:
        case events.CaseDispatched(start_level=level, owners=owners):
            values.update(status=Status.OPEN, level=level, owner_area_id=owners.at(level).id, **_scope(owners))
        case events.CaseTransferred(level=None, owners=owners):
            values.update(_scope(owners))  # re-routed by a new area version: the level stays
        case events.CaseTransferred(level=level, owners=owners):
            values.update(level=level, owner_area_id=owners.at(level).id, **_scope(owners))
        case events.CaseChanged(status=status, level=level, owner=owner):
            values.update(status=status, level=level, owner_area_id=owner.area_id)
    with uow:
        uow.store.follow(message.case_id, **values)
        uow.commit()


def _scope(owners: events.Owners) -> dict[str, str | None]:
    ids = owners.ids()
    return {f"{name}_id": ids[name] for name in SCOPED_AREA_LEVELS}


@dataclass(frozen=True)
class Verify:
    """The command: the grid worker's on-site check (核查) of a resolved case."""
    case_id: str
    passed: bool
    note: str
    identity: Identity


def verify_case(command: Verify, uow: UnitOfWork, *, clock: Clock) -> events.CaseVerified:
    """Send the grid worker's verdict to escalation (``case.verified``): passed closes the case, failed
    sends it to rework. ``LookupError`` if the caller's area does not hold the case (404),
    ``NotItsGridWorker`` if the caller sees it but is not the grid worker of its grid (403),
    ``NotAwaitingVerification`` if it is not waiting for one (409)."""
    caller = command.identity
    with uow:
        report = uow.store.get(command.case_id, caller)
        if report is None:
            raise LookupError(command.case_id)
        grid = report.owners.get("grid")
        on_site = (caller.role == Role.GRID_WORKER and grid == caller.area) if grid else (
            caller.role == Role.STATION and report.owners.get("station") == caller.area)
        if not on_site:  # a case in no grid is checked by its station (as escalation's permissions say)
            raise NotItsGridWorker(command.case_id)
        if report.status != Status.VERIFYING:
            raise NotAwaitingVerification(report.status)
        verified = events.CaseVerified(case_id=report.id, passed=command.passed, verifier=caller.user,
                                       at=clock.now(), note=command.note)
        uow.add(verified)
        uow.commit()
    return verified
