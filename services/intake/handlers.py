"""Intake's use cases: file a report, follow its case as the other services move it."""
from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.intake.domain.reports import (
    AlreadyVerified,
    IdempotencyConflict,
    LocationRequired,
    NewReport,
    NotAwaitingVerification,
    NotItsGridWorker,
    Report,
    UnknownCategory,
    UnknownSeverity,
    channel_of,
    degrees_around,
    nearest_duplicate,
    unusable_fix,
    verifier_of,
)
from services.intake.limits import Limits, OverLimit
from services.intake.photos import PhotoFiles, clean
from shared import words
from shared.auth import Identity
from shared.clock import Clock
from shared.config import Settings
from shared.messages import events
from shared.owners import NO_OWNERS
from shared.policy import Policy
from shared.uow import UnitOfWork
from shared.vocabulary import SCOPED_AREA_LEVELS, Level, Role, Status
from shared.words import Problem

#: The role that verifies on site at each level (escalation's ``permissions.LEVEL_ROLE``; headquarters, one per
#: city, checks a case outside every sub-center).
VERIFIER_ROLES = {Level.GRID: Role.GRID_WORKER, Level.STATION: Role.STATION, Level.SUBCENTER: Role.SUBCENTER,
                  Level.HQ: Role.COMMAND}


@dataclass(frozen=True)
class Submitted:
    report: Report
    created: bool


def submit_report(report: NewReport, reporter: Identity, idempotency_key: str | None, uow: UnitOfWork, *,
                  clock: Clock, policy: Policy, settings: Settings, limits: Limits | None = None) -> Submitted:
    """Store a report and its ``case.reported`` atomically.

    The reporter's allowance (``limits.report``, ``services.intake.limits``) is counted in the database,
    in the transaction that writes the report: a report is counted if and only if it is stored (not a
    retry, not a failure). ``OverLimit`` when it is used up, unless the request is the retry of a stored
    report (answered with it).

    A retry with the same key and the same report returns the stored one; the same key with a
    different report raises ``IdempotencyConflict``. The insert itself detects a used key
    (``ON CONFLICT DO NOTHING``), so two concurrent requests with one key make one report.

    A grid worker's report without a usable position (``unusable_fix``: none, ``0,0``, or an accuracy
    worse than ``settings.location_accuracy_limit_m``) is flagged ``location_unverified`` and
    ``case.reported`` names the worker's own grid, where dispatch routes it. Anyone else must send a
    position (``LocationRequired``); ``UnknownCategory`` for a category not in the policy,
    ``UnknownSeverity`` for a proposed severity it has no rules for (without one, the category's
    default). The report number is dated in the city's time zone (``settings.time_zone``). Its channel
    (``shared.policy.CHANNELS``) is where it came from: Open311 names it (``NewReport.channel``);
    otherwise the reporter's role says (``channel_of``); the policy decides by it whether the report
    waits for acceptance (立案).
    A report linked as a nearby duplicate follows its case's status (``follow_cases``).
    """
    if report.category not in policy.categories:
        raise UnknownCategory(report.category, ", ".join(policy.categories))
    if report.severity is not None and report.severity not in policy.severities:
        raise UnknownSeverity(report.severity, ", ".join(policy.severities))
    unusable = unusable_fix(report.lon, report.lat, report.accuracy_m, settings.location_accuracy_limit_m)
    fallback_grid = reporter.area if unusable and reporter.role == Role.GRID_WORKER else None
    if report.lon is None and fallback_grid is None:
        raise LocationRequired(unusable)
    now = clock.now()
    limit = limits.report if limits is not None and limits.applies(reporter) else None
    try:
        return _store_report(report, reporter, idempotency_key, uow, now=now, policy=policy, settings=settings,
                             fallback_grid=fallback_grid, limits=limits if limit else None, limit=limit)
    except _Full as full:  # over the limit: only a retry of a stored report is answered
        existing = stored_report(reporter, idempotency_key, uow) if idempotency_key else None
        if existing is None:
            raise full.over from None
        if existing.fingerprint != report.fingerprint():
            raise IdempotencyConflict(existing.id) from None
        return Submitted(existing, created=False)


class _Full(Exception):
    """A window of the reporter's limits was full: nothing was counted or stored (``over``: the refusal)."""

    def __init__(self, over: OverLimit):
        super().__init__()
        self.over = over


def _refusal(limits: Limits, limit, subject: str, proposed: list, current: dict) -> OverLimit:
    """The refusal when a window of ``limit`` was full (``current``: the subject's windows as they are),
    remembered by the process until the last full one ends."""
    full = [w for w in current.values() if w.count >= w.cap] or list(current.values()) or proposed
    window = max(full, key=lambda w: w.end)  # the wait is until the last full one ends
    limits.remember(limit, subject, window)
    return OverLimit(limit.kind, window, limits.now())


@dataclass
class _Counted:
    """A use counted against a limit (truthy), or the refusal (``over``) when it was used up."""
    limits: Limits
    limit: object
    subject: str
    windows: list
    over: object = None

    def __bool__(self) -> bool:
        return self.over is None


def _use(limits: Limits | None, limit, identity: Identity, uow: UnitOfWork) -> _Counted | None:
    """Count one use of ``limit`` by ``identity`` (None: not limited), committed before the work it allows;
    a window that was full refuses it (nothing counted). The process remembers a window it refused, or
    filled, so the next request is refused before its body is read."""
    if limits is None or not limits.applies(identity):
        return None
    now = limits.now()
    proposed = limit.windows(now)
    with uow:  # the store commits the count itself; the unit of work only reads the full windows
        counted = uow.store.use_allowance(identity.user, proposed)
        current = {} if counted else uow.store.windows_of(identity.user, [w.key for w in proposed])
    if counted:
        for window in counted.values():
            if window.count >= window.cap:
                limits.remember(limit, identity.user, window)
        return _Counted(limits, limit, identity.user, list(counted.values()))
    return _Counted(limits, limit, identity.user, [], over=_refusal(limits, limit, identity.user, proposed, current))


def _give_back(counted: _Counted | None, uow: UnitOfWork) -> None:
    """A counted use that stored nothing is not a use (and the window it filled is not full after all)."""
    if counted and counted.windows:
        with uow:  # committed by the store
            uow.store.give_back(counted.subject, counted.windows)
        counted.limits.forget(counted.limit, counted.subject)


def _store_report(report: NewReport, reporter: Identity, idempotency_key: str | None, uow: UnitOfWork, *,
                  now: datetime, policy: Policy, settings: Settings, fallback_grid: str | None,
                  limits: Limits | None = None, limit=None) -> Submitted:
    """Write the report with its message, counted against ``limit`` (None: not limited) in the same
    transaction; ``_Full`` when a window of it was full (nothing written)."""
    proposed = limit.windows(limits.now()) if limit is not None else []
    with uow:
        linked = None
        if fallback_grid is None and report.lon is not None and settings.duplicate_radius_m > 0:
            dlon, dlat = degrees_around(report.lat, settings.duplicate_radius_m)
            linked = nearest_duplicate(report.lon, report.lat, uow.store.open_near(
                report.category, report.lon, report.lat, dlon=dlon, dlat=dlat,
                since=now - timedelta(hours=settings.duplicate_window_hours)), settings.duplicate_radius_m)
        stored = Report(id=str(uuid.uuid4()), seq=uow.store.next_seq(), reporter=reporter.user,
                        idempotency_key=idempotency_key, fingerprint=report.fingerprint(), category=report.category,
                        severity=report.severity or policy.category(report.category).severity,
                        description=report.description, channel=report.channel or channel_of(reporter.role),
                        lon=report.lon, lat=report.lat, accuracy_m=report.accuracy_m, client_time=report.client_time,
                        location_unverified=fallback_grid is not None, status=Status.REPORTED, reported_at=now,
                        updated_at=now)
        if linked is not None:  # seen by the staff who see the case it repeats; opens no case of its own
            stored = replace(stored, duplicate_of=linked.id, status=linked.status, level=linked.level,
                             owner_area_id=linked.owner_area_id, owners=linked.owners,
                             status_note=words.note("note.duplicate_of", number=linked.number_in(settings.time_zone)))
        uow.store.add(stored, proposed)
        if linked is None:
            uow.add(reported_message(stored, settings.time_zone, fallback_grid))
        uow.commit()
        store = uow.store
        if store.full is not None:
            raise _Full(_refusal(limits, limit, reporter.user, proposed, store.full))
        if store.added:
            for window in store.counted.values():
                if window.count >= window.cap:  # filled: the process refuses the next one before its body
                    limits.remember(limit, reporter.user, window)
            return Submitted(stored, created=True)
    if idempotency_key is None:
        raise RuntimeError(f"report {stored.id} conflicted without an idempotency key")
    with uow:  # the key was used before (or by a concurrent request, now committed)
        existing = uow.store.by_key(reporter.user, idempotency_key)
    if existing.fingerprint != stored.fingerprint:
        raise IdempotencyConflict(existing.id)
    return Submitted(existing, created=False)


def stored_report(reporter: Identity, idempotency_key: str, uow: UnitOfWork) -> Report | None:
    """The report ``reporter`` stored with ``idempotency_key``, if any."""
    with uow:
        return uow.store.by_key(reporter.user, idempotency_key)


def reported_message(stored: Report, time_zone: str, reporter_grid: str | None = None) -> events.CaseReported:
    """The ``case.reported`` of a stored report (its location, if any, is WGS84; its number dated in the
    city's ``time_zone``)."""
    return events.CaseReported(
        case_id=stored.id, number=stored.number_in(time_zone), category=stored.category, severity=stored.severity,
        description=stored.description, location=events.Location(stored.lon, stored.lat) if stored.lon is not None
        else None, reporter=stored.reporter, reported_at=stored.reported_at, accuracy_m=stored.accuracy_m,
        client_time=stored.client_time, location_unverified=stored.location_unverified, reporter_grid=reporter_grid,
        channel=stored.channel)


@dataclass(frozen=True)
class Unlink:
    """The command: staff decide a report linked as a duplicate is a case of its own."""
    report_id: str
    identity: Identity


class NotADuplicate(Problem):
    """The report is not linked as a duplicate (409)."""

    status, code = 409, "report.not_a_duplicate"

    def __init__(self, report_id: str):
        super().__init__()
        self.report_id = report_id


def unlink_duplicate(command: Unlink, uow: UnitOfWork, *, clock: Clock, settings: Settings) -> Report:
    """Unlink a duplicate: it becomes a case of its own now (``case.reported``, routed by its position).
    ``LookupError`` if the caller does not see the report (404), ``NotADuplicate`` if it is not one (409)."""
    with uow:
        report = uow.store.get(command.report_id, command.identity)
        if report is None:
            raise LookupError(command.report_id)
        if report.duplicate_of is None:
            raise NotADuplicate(report.id)
        now = clock.now()
        uow.store.unlink(report.id, status=str(Status.REPORTED), level=None, owner_area_id=None, updated_at=now,
                         status_note=None, **NO_OWNERS.columns(SCOPED_AREA_LEVELS))
        uow.add(reported_message(report, settings.time_zone))
        uow.commit()
    return replace(report, duplicate_of=None, status=Status.REPORTED, level=None, owner_area_id=None, owners=NO_OWNERS,
                   updated_at=now, status_note=None)


def linked_case(report: Report, uow: UnitOfWork) -> Report | None:
    """The report (case) a duplicate repeats, as it stands now (its status and level), else None."""
    if report.duplicate_of is None:
        return None
    with uow:
        return uow.store.by_id(report.duplicate_of)


def my_reports(reporter: Identity, page: int, size: int, uow: UnitOfWork) -> tuple[list[Report], int]:
    """The reports ``reporter`` filed, newest first, with their case's current status and level:
    (one page of ``size``, the total)."""
    with uow:
        return uow.store.mine(reporter, page=page, size=size)


def follow_cases(messages: list[events.Message], uow: UnitOfWork, *, clock: Clock) -> None:
    """Escalation's events → the status, level, owner and area scope a reporter and the area's staff
    see on the report (``case.opened`` and ``case.rerouted`` bring the scope; escalation's
    ``case.transferred`` — the owners it decided, never dispatch's proposal of a re-route — a new one), as
    one update per case for the whole batch.

    Each message sets the columns it speaks for (``_followed``), each only if no newer message set it
    (``events.revision_key``: escalation's case revision and the step's place in it; per column, kept in
    ``followed_revisions``): so a redelivery, a message overtaken by a newer one (in this batch or an
    earlier one) or two intake workers taking one case's messages at once never move a report backwards,
    and an overtaken message still sets what no newer one did (the area scope of ``case.opened``, who
    verifies a fix from ``case.resolved``, a rework's reset of the verification claim). Whatever batches
    a case's messages come in, in whatever order, the report ends as if each had been applied alone in
    escalation's order. A verification intake sent (``verify_case``'s claim) stands at the revision the
    report had then: an older event arriving later does not take it back. The reports are locked while the
    batch is applied. A message without a revision
    (dispatch's own transfers, which escalation echoes with one; a ``case.dispatched`` queued from before
    ``case.opened`` carried the scope) is applied only while the report has seen no revision.

    A report linked to a case (a nearby duplicate, or one merged into it: ``case.merged``) follows that
    case's status, level and owner from then on (the store applies a case's change to its linked
    reports too). ``case.resolved`` says who verifies the fix on site and who made it; a report refused,
    voided or merged keeps why (``status_note``, which Open311's ``status_notes`` shows)."""
    now = clock.now()
    assigned: set[tuple[str, str]] = set()
    for message in messages:
        if isinstance(message, events.CaseChanged) and message.event == "case.department_assigned" \
                and isinstance(message.detail.get("department"), str):
            assigned.add((message.case_id, message.detail["department"]))
    with uow:
        applied = uow.store.case_revisions({message.case_id for message in messages})
        changes: dict[str, dict] = {}
        for message in messages:
            if message.case_id not in applied:
                continue  # no such report (nothing to follow)
            if isinstance(message, events.CaseTransferred) and message.envelope is not None \
                    and message.envelope.producer != "escalation":
                continue  # dispatch's proposal of a re-route: escalation decides, and its answer follows
            key, (last, columns) = events.revision_key(message), applied[message.case_id]
            followed = _followed(message)
            if key is None:
                if last is not None:
                    continue
            else:
                at = list(key)  # as the report keeps each column's key (JSON): [revision, step]
                if last is None or key > last:
                    last = key  # the newest yet: every column it speaks for is its own
                else:  # overtaken: only what no newer message set (a report followed before the keys: "*")
                    floor = columns.get("*", UNSET)
                    followed = {name: value for name, value in followed.items() if at > columns.get(name, floor)}
                    if not followed:
                        continue
                columns.update(dict.fromkeys(followed, at))
                applied[message.case_id] = (last, columns)
            change = changes.setdefault(message.case_id, {"updated_at": now})
            change.update(followed)
            if key is not None:
                change.update(case_revision=last[0], case_revision_step=last[1], followed_revisions=columns)
        uow.store.follow_all(changes)
        if assigned:
            uow.store.add_departments(assigned)
        uow.commit()


#: The revision key of a column no event with a revision has set: any such event is newer.
UNSET = [0, -1]


def _followed(message: events.Message) -> dict:
    """The report's columns after ``message``. A case that leaves verification, or changes owners (its
    verifier may have changed), is open to a verification again when it next awaits one."""
    match message:
        case events.CaseDispatched(start_level=level, owners=owners):
            return {"status": Status.OPEN, "level": level, "owner_area_id": owners.at(level).id,
                    **owners.columns(SCOPED_AREA_LEVELS)}
        case events.CaseTransferred(level=None, owners=owners):
            # re-routed by a new area version: the level stays
            return {**owners.columns(SCOPED_AREA_LEVELS), "verification_sent_at": None}
        case events.CaseTransferred(level=level, owners=owners):
            return {"level": level, "owner_area_id": owners.at(level).id, **owners.columns(SCOPED_AREA_LEVELS),
                    "verification_sent_at": None}
        case events.CaseChanged(event="case.merged", detail=detail):
            return {"status_note": _why(message), "merged_into": detail.get("into"), "verification_sent_at": None}
        case events.CaseChanged(event="case.resolved", status=status, level=level, owner=owner, deadline=deadline,
                                detail=detail):
            return {"status": status, "level": level, "owner_area_id": owner.area_id,
                    "owner_area_name": owner.area_name, "deadline_at": deadline,
                    "verifier_level": detail.get("verifier_level"), "resolved_by": detail.get("resolved_by"),
                    # a new round of verification: no verification of it sent yet, whatever earlier round's
                    # claim a batch that also held the rework's event would otherwise leave behind
                    "verification_sent_at": None}
        case events.CaseChanged(status=status, level=level, owner=owner, deadline=deadline, scope=scope,
                                event=event):
            scoped = scope.columns(SCOPED_AREA_LEVELS) if scope is not None else {}
            ended = {"status_note": _why(message)} if event in ("case.refused", "case.voided") else {}
            claim = {} if status == Status.VERIFYING else {"verification_sent_at": None}
            return {"status": status, "level": level, "owner_area_id": owner.area_id,
                    "owner_area_name": owner.area_name, "deadline_at": deadline, **scoped, **ended, **claim}
    return {}


def _why(message: events.CaseChanged) -> str | None:
    """Why a case ended, as the report keeps it: the system's words as a stored note (its code and
    parameters, ``shared.words.note``: read in each reader's language), else the person's words (a void's
    reason) or the English text of a message from before ``reason_message``, as written."""
    if message.reason_message:
        try:
            return words.stored_note(words.Message.from_json(message.reason_message))
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # a code this version does not hold: the English text
    return message.reason


@dataclass(frozen=True)
class Verify:
    """The command: the grid worker's on-site check (核查) of a resolved case."""
    case_id: str
    passed: bool
    note: str
    identity: Identity


def verify_case(command: Verify, uow: UnitOfWork, *, clock: Clock) -> events.CaseVerified:
    """Send the on-site verdict to escalation (``case.verified``): passed closes the case, failed sends
    it to rework. ``LookupError`` if the caller's area does not hold the case (404),
    ``NotItsGridWorker`` if the caller sees it but is not the one who verifies it (403): the grid worker
    of its grid, or the station where the grid worker made the fix or the case is in no grid
    (``verifier_of``, escalation's ``permissions.verifying_level``), and never the person who made the
    fix (``case.not_verifier`` in ``shared/words.toml``); ``NotAwaitingVerification`` if it is not
    waiting for one (409);
    ``AlreadyVerified`` if a verification of this round was sent first (409): the report row is claimed
    by a conditional update (``claim_verification``) in the transaction that writes the message, so of
    concurrent verifications, in any number of processes, exactly one is sent."""
    caller = command.identity
    with uow:
        report = uow.store.get(command.case_id, caller)
        if report is None:
            raise LookupError(command.case_id)
        level, area = verifier_of(report)
        if caller.role != VERIFIER_ROLES[level] or (level != Level.HQ and (area is None or caller.area != area)):
            raise NotItsGridWorker(command.case_id)
        if report.resolved_by is not None and caller.user == report.resolved_by:
            raise NotItsGridWorker(command.case_id)
        if report.status != Status.VERIFYING:
            raise NotAwaitingVerification(report.status)
        now = clock.now()
        if not uow.store.claim_verification(report.id, now):
            raise AlreadyVerified(report.id)
        verified = events.CaseVerified(case_id=report.id, passed=command.passed, verifier=caller.user,
                                       at=now, note=command.note)
        uow.add(verified)
        uow.commit()
    return verified


MAX_PHOTOS = 10  # per report and kind: a phone's burst of shots, not an album


class TooManyPhotos(Problem):
    """The report holds ``MAX_PHOTOS`` photos of the kind already (422, about ``file``)."""

    status, code = 422, "photo.too_many"

    def __init__(self, report_id: str):
        super().__init__(field="file", max=MAX_PHOTOS)
        self.report_id = report_id


class PhotoKeyConflict(Problem):
    """The uploader used this Idempotency-Key before for another photo (or another report) (422)."""

    status, code = 422, "photo.key_conflict"

    def __init__(self, existing: str):
        super().__init__(field="Idempotency-Key")
        self.existing = existing


@dataclass(frozen=True)
class AddPhoto:
    """The command: a photo (an uploaded file's bytes) for a report, what it shows (``PHOTO_KINDS``), and the
    uploader's Idempotency-Key."""
    report_id: str
    data: bytes
    identity: Identity
    idempotency_key: str | None = None
    kind: str = "before"

    def fingerprint(self) -> str:
        """What makes two uploads the same photo: the report, what it shows and the bytes (SHA-256, hex; a
        ``before`` photo hashes as photos did before they had a kind)."""
        kind = b"" if self.kind == "before" else self.kind.encode() + b"\0"
        return hashlib.sha256(self.report_id.encode() + b"\0" + kind + self.data).hexdigest()


def add_photo(command: AddPhoto, uow: UnitOfWork, *, clock: Clock, photo_files: PhotoFiles,
              limits: Limits | None = None) -> tuple[dict, bool]:
    """Check, clean and store a photo of a report the caller may see (``services.intake.photos``).

    → (the stored photo's row as a dict, whether it was stored now). An ``idempotency_key`` the uploader
    used before with the same report, kind and bytes answers that photo, unchanged and not decoded again
    (``False``); with another photo it raises ``PhotoKeyConflict`` (422). Two concurrent uploads with one
    key store one photo (the insert detects the used key; the loser's files are removed). ``LookupError``
    if the report is unknown or outside the caller's area (404, checked before the image is decoded);
    ``TooManyPhotos`` past ``MAX_PHOTOS`` of its kind (422: the photo's transaction takes the report's row
    first, ``count_photo``, so concurrent uploads never store more); ``OverLimit`` past the uploader's photo
    allowance (429: counted in the database before the decode, given back if nothing is stored);
    ``NotAnImage`` (415), ``TooLarge`` (413), ``BadImage`` (422) from ``photos.clean``."""
    user, key, fingerprint = command.identity.user, command.idempotency_key, command.fingerprint()
    with uow:
        report = uow.store.get(command.report_id, command.identity)
        if report is None:
            raise LookupError(command.report_id)
        if key is not None and (existing := uow.store.photo_by_key(user, key)) is not None:
            return _same_photo(existing, fingerprint), False
        if uow.store.photo_count(report.id, command.kind) >= MAX_PHOTOS:
            raise TooManyPhotos(report.id)
    counted = _use(limits, limits.photo if limits else None, command.identity, uow)
    if counted is not None and not counted:
        raise counted.over
    name = None
    try:
        photo = clean(command.data)
        name = photo_files.save(photo)
        row = {"id": str(uuid.uuid4()), "report_id": report.id, "uploader": user, "kind": command.kind,
               "stored_name": name, "content_type": photo.content_type, "width": photo.width,
               "height": photo.height, "bytes": len(photo.image), "created_at": clock.now(),
               "idempotency_key": key, "fingerprint": fingerprint}
        with uow:
            added = uow.store.add_photo(**row)
            if added and uow.store.count_photo(report.id, command.kind) > MAX_PHOTOS:
                raise TooManyPhotos(report.id)  # leaving the block rolls the photo's row back
            uow.commit()
    except BaseException:
        if name is not None:
            photo_files.remove(name)
        _give_back(counted, uow)
        raise
    if added:
        return row, True
    photo_files.remove(name)  # a concurrent upload with the same key was stored first
    _give_back(counted, uow)
    with uow:
        return _same_photo(uow.store.photo_by_key(user, key), fingerprint), False


def _same_photo(existing, fingerprint: str) -> dict:
    if existing.fingerprint != fingerprint:
        raise PhotoKeyConflict(existing.id)
    return existing._asdict()


def stored_photo(uploader: Identity, idempotency_key: str, uow: UnitOfWork) -> dict | None:
    """The photo ``uploader`` stored with ``idempotency_key``, if any (a retry is answered over the rate limit)."""
    with uow:
        row = uow.store.photo_by_key(uploader.user, idempotency_key)
    return row._asdict() if row is not None else None


def report_photos(report_id: str, identity: Identity, uow: UnitOfWork) -> list:
    """The photos of a report the caller may see; ``LookupError`` otherwise (404)."""
    with uow:
        if uow.store.get(report_id, identity) is None:
            raise LookupError(report_id)
        return [row._asdict() for row in uow.store.photos(report_id)]


def photo_file(report_id: str, photo_id: str, identity: Identity, uow: UnitOfWork) -> dict:
    """One photo's row, if the caller may see its report; ``LookupError`` otherwise (404)."""
    with uow:
        row = uow.store.photo(report_id, photo_id) if uow.store.get(report_id, identity) else None
    if row is None:
        raise LookupError(photo_id)
    return row._asdict()


def create_api_key(name: str, uow: UnitOfWork, *, clock: Clock) -> str:
    """A new Open311 API key for the client ``name`` (unique): returned once, stored only as its SHA-256."""
    key = secrets.token_urlsafe(32)
    with uow:
        uow.store.add_api_key(hashlib.sha256(key.encode()).hexdigest(), name, clock.now())
        uow.commit()
    return key


def api_key_name(key: str, uow: UnitOfWork) -> str | None:
    """The client name of an Open311 API key, or None for an unknown (or empty) key."""
    if not key or len(key) > 128:
        return None
    with uow:
        return uow.store.api_key_name(hashlib.sha256(key.encode()).hexdigest())


@dataclass(frozen=True)
class PublicQuery:
    """Open311's filters (GeoReport v2 ``GET requests``), within what the public may see at all: reports
    filed by a reporter whose subject starts with ``reporter_prefix`` in one of ``categories``."""
    categories: tuple[str, ...]
    reporter_prefix: str
    ids: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    closed: bool | None = None
    limit: int = 1000


def public_reports(query: PublicQuery, uow: UnitOfWork) -> list[tuple[Report, str | None]]:
    """Reports for the public Open311 listing, each with its earliest photo's id (None: no photo); the
    caller shows only their public fields. A duplicate is listed only when asked for by its id."""
    with uow:
        found = uow.store.public(categories=query.categories, reporter_prefix=query.reporter_prefix,
                                 ids=query.ids, codes=query.codes, start=query.start, end=query.end,
                                 closed=query.closed, limit=query.limit)
        photos = uow.store.first_photos([r.id for r in found]) if found else {}
    return [(report, photos.get(report.id)) for report in found]


def public_photo(query: PublicQuery, photo_id: str, uow: UnitOfWork) -> tuple[Report, dict]:
    """A photo of a report the public may see (``query``'s bounds): (the report, the photo's row);
    ``LookupError`` otherwise."""
    with uow:
        row = uow.store.photo_by_id(photo_id)
        report = uow.store.public(categories=query.categories, reporter_prefix=query.reporter_prefix,
                                  ids=(row.report_id,), limit=1) if row is not None else []
    if not report:
        raise LookupError(photo_id)
    return report[0], row._asdict()


def keep_departments(message: events.DepartmentsPublished, uow: UnitOfWork) -> None:
    """``departments.published`` → intake's copy of the city's departments (for its categories)."""
    with uow:
        uow.store.replace_departments(message.version, message.departments)
        uow.commit()


def city_departments(uow: UnitOfWork) -> list:
    """The city's departments (intake's copy), by id."""
    with uow:
        return uow.store.departments()


def departments_of(report_id: str, uow: UnitOfWork) -> frozenset[str]:
    """The departments assigned to a report's case."""
    with uow:
        return uow.store.departments_of(report_id)
