"""Intake's table and every query on it: the only place in intake with SQL."""
from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.intake.domain.reports import Report
from services.intake.limits import Window
from shared import outbox
from shared.auth import Identity
from shared.db import UTCDateTime, update_rows
from shared.departments import Department, departments_table, load_departments, store_departments
from shared.messages import Envelope
from shared.owners import Owners
from shared.uow import Store, relay_elsewhere
from shared.vocabulary import ROLE_SCOPE, SCOPED_AREA_LEVELS, Level, Role, Status

metadata = sa.MetaData()

reports = sa.Table(
    "reports", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("idempotency_key", sa.String(128)),
    sa.Column("reporter", sa.String(128), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("lon", sa.Float),  # WGS84; null: a grid worker's report without a position
    sa.Column("lat", sa.Float),
    sa.Column("accuracy_m", sa.Float),  # the phone's accuracy radius
    sa.Column("client_time", UTCDateTime),  # the phone's clock, kept apart from reported_at (the server's)
    sa.Column("location_unverified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reported_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("level", sa.Integer),
    sa.Column("owner_area_id", sa.String(64)),
    sa.Column("owner_area_name", sa.String(200)),
    sa.Column("deadline_at", UTCDateTime),  # the case's deadline at its level (from escalation's events)
    sa.Column("duplicate_of", sa.String(36)),  # the report (case) this one repeats, or was merged into
    sa.Column("channel", sa.String(16)),  # grid_worker, staff or open311 (acceptance, 立案, depends on it)
    sa.Column("status_note", sa.Text),  # why it ended without a fix: refused (with the reason), voided, merged
    # from case.resolved: the level that verifies the fix on site, and who made it (never its verifier)
    sa.Column("verifier_level", sa.Integer),
    sa.Column("resolved_by", sa.String(128)),
    # The case's owners below headquarters, from case.dispatched / case.transferred: the area scope.
    sa.Column("grid_id", sa.String(64)),
    sa.Column("station_id", sa.String(64)),
    sa.Column("subcenter_id", sa.String(64)),
    # The first verification of the current round (a conditional update claims it: the first wins).
    sa.Column("verification_sent_at", UTCDateTime),
    # Photos stored for the report, raised by a conditional update with each one (at most MAX_PHOTOS).
    sa.Column("photo_count", sa.Integer, nullable=False, server_default="0"),
    # The newest of escalation's events applied (``events.revision_key``): older ones change nothing.
    sa.Column("case_revision", sa.Integer),
    sa.Column("case_revision_step", sa.Integer),
    # Per column the escalation event set last, its revision key (``[revision, step]``): an overtaken event
    # still sets a column no newer one set (``handlers.follow_cases``). None: none yet, or a report
    # followed before the map was kept (its columns all stand at ``case_revision``).
    sa.Column("followed_revisions", sa.JSON),
    # The revision key the report stood at when its verification was claimed: an event older than that,
    # arriving late, does not take the claim back.
    sa.Column("verification_revision", sa.Integer),
    sa.Column("verification_revision_step", sa.Integer),
    sa.UniqueConstraint("reporter", "idempotency_key", name="uq_reports_idempotency"),
    sa.Index("ix_reports_reporter_seq", "reporter", "seq"),
    sa.Index("ix_reports_category_reported_at", "category", "reported_at"),
    sa.Index("ix_reports_duplicate_of", "duplicate_of"),
)

photos = sa.Table(
    "photos", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("report_id", sa.String(36), sa.ForeignKey("reports.id"), nullable=False, index=True),
    sa.Column("uploader", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, server_default="before"),  # PHOTO_KINDS
    sa.Column("stored_name", sa.String(64), nullable=False),  # generated: <uuid hex>.jpg|.png
    sa.Column("content_type", sa.String(32), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The uploader's Idempotency-Key, and a SHA-256 of the report id and the bytes sent with it: the same
    # key again with the same photo is answered with this one, with another photo refused.
    sa.Column("idempotency_key", sa.String(128)),
    sa.Column("fingerprint", sa.String(64)),
    sa.UniqueConstraint("uploader", "idempotency_key", name="uq_photos_idempotency"),
)

#: The functional departments assigned to a report's case (from ``case.department_assigned``): a
#: department reads those reports and adds photos to them (its after-photos).
report_departments = sa.Table(
    "report_departments", metadata,
    sa.Column("report_id", sa.String(36), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("department_id", sa.String(64), primary_key=True),
)

#: Per-person rate limits (``services.intake.limits``): a row per person and limit, its current window
#: (``window_start``, whole seconds since 1970, and its length), the uses counted in it and the allowance.
rate_counts = sa.Table(
    "rate_counts", metadata,
    sa.Column("subject", sa.String(128), primary_key=True),
    sa.Column("limit_key", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("window_seconds", sa.Integer, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("cap", sa.Integer, nullable=False),
)

#: Open311 clients' keys: only a SHA-256 of each (a key is 256 random bits: no dictionary to guess from).
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


#: Intake's copy of the city's departments (from ``departments.published``), for its categories.
departments = departments_table(metadata)


def unit_kind(engine: sa.Engine, subject: str) -> str | None:
    """``department`` when ``subject`` is the id of one of the city's departments (intake's copy), else
    None: a token whose ``sub`` is a unit's id is refused (``shared.auth``, "Unit subjects"). Intake keeps
    no copy of the areas; a subject that is an area's id is refused by dispatch and escalation."""
    with engine.connect() as db:
        found = db.execute(sa.select(departments.c.id).where(departments.c.id == subject)).first()
    return "department" if found else None


class ReportStore(Store):
    """Reports. ``add`` holds the report back until the unit of work commits, when ``flush`` writes
    it with its message — and counts its reporter's use of each limit, in the same transaction: on
    PostgreSQL a data-modifying CTE (the report and its outbox row in one statement) on a connection of
    its own, after the limits' upserts when the reporter is limited (else alone, in autocommit: no
    BEGIN/COMMIT round trips); on SQLite in the unit of work's transaction."""

    def __init__(self, connect, engine):
        super().__init__(connect, engine)
        self._pending: Report | None = None
        self._allowance: list[Window] = []
        self._used_transaction = False
        #: after commit: whether the pending report was stored (False: its idempotency key was used, or
        #: a limit was full)
        self.added = False
        #: after commit: the windows the stored report was counted in (limit key → the window as it is now)
        self.counted: dict[str, Window] = {}
        #: after commit: when a limit's window was full, the reporter's windows of its limits as they are
        #: (nothing was counted or written); else None
        self.full: dict[str, Window] | None = None

    @property
    def db(self) -> sa.Connection:
        self._used_transaction = True
        return super().db

    def next_seq(self) -> int:
        """The next report sequence number. PostgreSQL: reserved from the sequence a block at a time
        per process, so numbers are unique but only roughly in time order across processes; SQLite
        (one writer at a time): read inside the write transaction."""
        if self.postgres:
            return _blocks(self.engine).next()
        return self.db.execute(sa.select(sa.func.coalesce(sa.func.max(reports.c.seq), 0) + 1)).scalar_one()

    def add(self, report: Report, allowance: list[Window] = ()) -> None:
        """Write ``report`` (with the unit of work's message) when the unit of work commits, counting one
        use by its reporter in each of ``allowance`` (``limits.RateLimit.windows``: a window of each limit,
        opening now) in the same transaction: stored and counted, or neither (``added``, ``counted`` and
        ``full`` say which after the commit). A full window, or an idempotency key used before, leaves
        every count as it was: the use is counted only when the report is stored."""
        self._pending, self._allowance = report, list(allowance)

    def flush(self, envelopes: list[Envelope]) -> None:
        report, self._pending = self._pending, None
        allowance, self._allowance = self._allowance, []
        if report is None:
            return super().flush(envelopes)
        self.added, self.counted, self.full = False, {}, None
        values = _values(report)
        if self.postgres and not self._used_transaction and len(envelopes) == 1:
            params = {**values, **outbox.row(envelopes[0])}
            if not allowance:
                with _autocommit(self.engine).connect() as connection:
                    self.added = connection.execute(_report_and_message(relay_elsewhere(self.engine)),
                                                    params).first() is not None
                return
            for i, w in enumerate(allowance):
                params.update({f"key_{i}": w.key, f"start_{i}": w.start, f"seconds_{i}": w.seconds, f"cap_{i}": w.cap})
            params["subject"] = report.reporter
            statement = _counted_report_and_message(len(allowance), relay_elsewhere(self.engine))
            with self.engine.connect() as connection:
                with connection.begin() as transaction:
                    rows = connection.execute(statement, params).all()
                    self.added = bool(rows) and rows[0].stored > 0
                    if self.added:
                        proposed = {w.key: w for w in allowance}
                        self.counted = {r.limit_key: replace(proposed[r.limit_key], start=r.window_start,
                                                             count=r.count) for r in rows}
                    else:
                        transaction.rollback()  # a full window or a used key: nothing counted, nothing written
                if len(rows) < len(allowance):  # read after the rollback: as every other request sees them
                    self.full = _windows(connection, report.reporter, [w.key for w in allowance])
            return
        # one transaction, the unit of work's: what was counted is taken back in it when nothing is written
        if allowance and not self._count(self.db, report.reporter, allowance):
            if self.counted:  # the limits before the full one
                self._uncount(self.db, report.reporter, list(self.counted.values()))
                self.counted = {}
            self.full = _windows(self.db, report.reporter, [w.key for w in allowance])
            return
        dialect = postgresql if self.postgres else sqlite
        self.added = self.db.execute(dialect.insert(reports).values(**values).on_conflict_do_nothing()
                                     .returning(reports.c.seq)).scalar() is not None
        if self.added:
            super().flush(envelopes)
        elif self.counted:
            self._uncount(self.db, report.reporter, list(self.counted.values()))
            self.counted = {}

    def _count(self, connection: sa.Connection, subject: str, windows: list[Window]) -> bool:
        """Count one use by ``subject`` in each of ``windows`` on ``connection``, in its transaction
        (``_count_uses``). At the first full window: False; the uses counted before it are still in
        ``counted``, for the caller to roll back or take back."""
        self.counted, complete = _count_uses(connection, self.postgres, subject, windows)
        return complete

    @staticmethod
    def _uncount(connection: sa.Connection, subject: str, windows: list[Window]) -> None:
        connection.execute(_give_back_statement(), [{"b_subject": subject, "b_key": w.key, "b_start": w.start}
                                                    for w in windows])

    def by_key(self, reporter: str, key: str) -> Report | None:
        return _report(self.db.execute(sa.select(reports).where(
            reports.c.reporter == reporter, reports.c.idempotency_key == key)).first())

    def get(self, report_id: str, identity: Identity) -> Report | None:
        """The report if it exists and ``identity`` may see it (else None, as if it did not exist)."""
        query = scoped(sa.select(reports).where(reports.c.id == report_id), identity)
        return _report(self.db.execute(query).first())

    def open_near(self, category: str, lon: float, lat: float, *, dlon: float, dlat: float, since) -> list:
        """Open cases (not duplicates, not closed) of ``category`` reported since ``since`` inside the box
        ``lon ± dlon``, ``lat ± dlat``: rows with ``id``, ``number`` parts, ``lon``, ``lat`` and owners.
        On PostgreSQL read on its own autocommit connection, so that the report is still written with its
        message in one statement."""
        query = sa.select(reports).where(
            reports.c.category == category, reports.c.reported_at >= since, reports.c.duplicate_of.is_(None),
            reports.c.status.notin_([str(s) for s in (*ENDED_FOR_THE_PUBLIC, Status.MERGED)]),
            reports.c.lon.between(lon - dlon, lon + dlon),
            reports.c.lat.between(lat - dlat, lat + dlat)).limit(50)
        if self.postgres:
            with self.engine.connect() as connection:
                return [_report(row) for row in connection.execute(query)]
        return [_report(row) for row in self.db.execute(query)]

    def by_id(self, report_id: str) -> Report | None:
        """A report whatever the caller (for what a duplicate's reporter is told of the case it repeats)."""
        return _report(self.db.execute(sa.select(reports).where(reports.c.id == report_id)).first())

    def unlink(self, report_id: str, **values) -> None:
        self.db.execute(reports.update().where(reports.c.id == report_id).values(duplicate_of=None, **values))

    def mine(self, identity: Identity, *, page: int, size: int) -> tuple[list[Report], int]:
        """The reports ``identity`` filed, newest first: (page ``page`` of ``size``, the total)."""
        own = reports.c.reporter == identity.user
        total = self.db.execute(sa.select(sa.func.count()).select_from(reports).where(own)).scalar_one()
        rows = self.db.execute(sa.select(reports).where(own).order_by(reports.c.seq.desc())
                               .limit(size).offset((page - 1) * size)).all()
        return [_report(row) for row in rows], total

    def add_api_key(self, key_hash: str, name: str, now) -> None:
        self.db.execute(api_keys.insert().values(key_hash=key_hash, name=name, created_at=now))

    def api_key_name(self, key_hash: str) -> str | None:
        return self.db.execute(sa.select(api_keys.c.name).where(api_keys.c.key_hash == key_hash)).scalar()

    def public(self, *, categories, reporter_prefix: str, ids=(), codes=(), start=None, end=None, closed=None,
               limit=1000) -> list[Report]:
        """Reports the public may see, newest first: filed by a reporter whose subject starts with
        ``reporter_prefix`` (an Open311 client) in one of ``categories``; then by ids (a duplicate
        included: whoever holds its id filed it), else — a listing — by category ``codes``,
        ``start <= reported_at < end`` and closed or not, duplicates left out."""
        query = sa.select(reports).where(reports.c.reporter.startswith(reporter_prefix, autoescape=True),
                                         reports.c.category.in_(tuple(categories)))
        if ids:
            query = query.where(reports.c.id.in_(ids))
        else:
            query = query.where(reports.c.duplicate_of.is_(None))
            if codes:
                query = query.where(reports.c.category.in_(codes))
            if start is not None:
                query = query.where(reports.c.reported_at >= start)
            if end is not None:
                query = query.where(reports.c.reported_at < end)
            if closed is not None:
                is_closed = reports.c.status.in_([str(s) for s in ENDED_FOR_THE_PUBLIC])
                query = query.where(is_closed if closed else sa.not_(is_closed))
        rows = self.db.execute(query.order_by(reports.c.seq.desc()).limit(limit)).all()
        return [_report(row) for row in rows]

    def add_photo(self, **values) -> bool:
        """Insert a photo's row; False (nothing written) when its uploader used its Idempotency-Key before."""
        dialect = postgresql if self.postgres else sqlite
        return self.db.execute(dialect.insert(photos).values(**values).on_conflict_do_nothing()
                               .returning(photos.c.id)).first() is not None

    def photo_by_key(self, uploader: str, key: str):
        """The photo ``uploader`` stored with Idempotency-Key ``key``, or None."""
        return self.db.execute(sa.select(photos).where(photos.c.uploader == uploader,
                                                       photos.c.idempotency_key == key)).first()

    def photos(self, report_id: str) -> list:
        """The photos of a report, oldest first (rows of ``photos``)."""
        return self.db.execute(sa.select(photos).where(photos.c.report_id == report_id)
                               .order_by(photos.c.created_at, photos.c.id)).all()

    def first_photos(self, report_ids) -> dict[str, str]:
        """The earliest photo of each of ``report_ids`` that has one: report id → photo id."""
        rows = self.db.execute(sa.select(photos.c.report_id, photos.c.id).where(photos.c.report_id.in_(
            tuple(report_ids))).order_by(photos.c.report_id, photos.c.created_at, photos.c.id)).all()
        first: dict[str, str] = {}
        for report_id, photo_id in rows:
            first.setdefault(report_id, photo_id)
        return first

    def photo_by_id(self, photo_id: str):
        return self.db.execute(sa.select(photos).where(photos.c.id == photo_id)).first()

    def photo(self, report_id: str, photo_id: str):
        return self.db.execute(sa.select(photos).where(photos.c.report_id == report_id,
                                                       photos.c.id == photo_id)).first()

    def add_departments(self, pairs: set[tuple[str, str]]) -> None:
        """Record departments assigned to cases: (report id, department id) pairs, each once."""
        known = {tuple(r) for r in self.db.execute(sa.select(report_departments).where(
            report_departments.c.report_id.in_({report for report, _ in pairs})))}
        new = [{"report_id": r, "department_id": d} for r, d in sorted(pairs - known)]
        existing = {r for r in self.db.execute(sa.select(reports.c.id).where(
            reports.c.id.in_({r["report_id"] for r in new}))).scalars()} if new else set()
        if new := [row for row in new if row["report_id"] in existing]:
            self.db.execute(report_departments.insert(), new)

    def departments_of(self, report_id: str) -> frozenset[str]:
        """The departments assigned to a report's case."""
        return frozenset(self.db.execute(sa.select(report_departments.c.department_id).where(
            report_departments.c.report_id == report_id)).scalars())

    def replace_departments(self, version: int, items) -> bool:
        return store_departments(self.db, departments, version, items)

    def departments(self) -> list[Department]:
        return load_departments(self.db, departments)

    def use_allowance(self, subject: str, windows: list[Window]) -> dict[str, Window]:
        """Count one use by ``subject`` in each limit of ``windows`` (``limits.Window``, each opening now)
        whose current window is not full, opening a new window where the last one has ended — in all of
        them or in none: a conditional upsert per limit, which leaves a full window's row untouched, in a
        short transaction of its own that is rolled back at the first full one. → limit key → the window
        counted in (its start and count now), for every limit; empty when one was full. Committed at
        once, outside the unit of work's transaction (a photo's decode comes between the count and its
        row; a report is counted by ``add``, in the transaction that writes it), so every process sees
        it; the row locks of the transaction make a person's concurrent requests wait for each other's
        verdict, so a refusal never rests on a count another request is about to give back."""
        with self.engine.connect() as connection, connection.begin() as transaction:
            counted, complete = _count_uses(connection, self.postgres, subject, windows)
            if not complete:
                transaction.rollback()
                return {}
        return counted

    def windows_of(self, subject: str, keys: list[str]) -> dict[str, Window]:
        """``subject``'s current windows of the limits ``keys`` (to say when a full one ends)."""
        return _windows(self.db, subject, keys)

    def give_back(self, subject: str, windows) -> None:
        """Undo one counted use by ``subject`` in each of ``windows`` (a use that stored nothing), where
        the window is still the current one."""
        with _committed(self.engine) as connection:
            self._uncount(connection, subject, list(windows))

    def photo_count(self, report_id: str, kind: str) -> int:
        """How many photos of ``kind`` the report holds."""
        return self.db.execute(sa.select(sa.func.count()).select_from(photos).where(
            photos.c.report_id == report_id, photos.c.kind == kind)).scalar_one()

    def count_photo(self, report_id: str, kind: str) -> int:
        """After a photo's insert: take the report's row (``photo_count`` + 1, its row lock on PostgreSQL,
        the write lock on SQLite), so a report's uploads are counted one after another, then → how many
        photos of ``kind`` it holds now, this one included. Above the cap the caller rolls back."""
        self.db.execute(reports.update().where(reports.c.id == report_id)
                        .values(photo_count=reports.c.photo_count + 1))
        return self.photo_count(report_id, kind)

    def claim_verification(self, report_id: str, now) -> bool:
        """Claim the verification of the case's current round: one conditional update, so of several
        verifications at once (threads, processes) exactly one gets True; the others see it claimed. The
        claim is written at the revision key the report stands at (``case_revisions``), in the same update."""
        claimed = self.db.execute(reports.update().where(
            reports.c.id == report_id, reports.c.status == str(Status.VERIFYING),
            reports.c.verification_sent_at.is_(None)).values(
                verification_sent_at=now, verification_revision=reports.c.case_revision,
                verification_revision_step=reports.c.case_revision_step))
        return claimed.rowcount == 1
    def case_revisions(self, case_ids: set[str]) -> dict[str, tuple[tuple[int, int] | None, dict]]:
        """Report id → (the newest revision key applied to it, ``events.revision_key``, None before the
        first; column name → the revision key that set it last, as a ``[revision, step]`` list), for those
        of ``case_ids`` that are reports. A report followed before the columns' keys were kept has them all
        at its newest key (``"*"``); a verification claimed (``claim_verification``) stands at the key the
        report had then. On PostgreSQL the rows stay locked until the unit of work ends, taken in id order
        (two workers never deadlock), so a second worker following the same case waits and then reads what
        the first one applied."""
        if not case_ids:
            return {}
        query = (sa.select(reports.c.id, reports.c.case_revision, reports.c.case_revision_step,
                           reports.c.followed_revisions, reports.c.verification_revision,
                           reports.c.verification_revision_step)
                 .where(reports.c.id.in_(sorted(case_ids))).order_by(reports.c.id))
        if self.postgres:
            query = query.with_for_update()
        found = {}
        for r in self.db.execute(query):
            last = None if r.case_revision is None else (r.case_revision, r.case_revision_step or 0)
            columns = dict(r.followed_revisions or {})  # each key as JSON keeps it: [revision, step]
            if r.followed_revisions is None and last is not None:
                columns["*"] = list(last)
            if r.verification_revision is not None:  # the claim: a write of its own, at the key it was made at
                claimed = [r.verification_revision, r.verification_revision_step or 0]
                columns["verification_sent_at"] = max(columns.get("verification_sent_at", columns.get("*", [0, -1])),
                                                      claimed)
            found[r.id] = (last, columns)
        return found

    def follow(self, case_id: str, **values) -> None:
        """What intake knows of a case after it left: status, level, owner (from the others' events)."""
        self.follow_all({case_id: values})

    def follow_all(self, changes: dict[str, dict]) -> None:
        """``follow`` for many cases: case id → the columns to set; one statement per set of columns.

        The reports linked to a case (``duplicate_of``: nearby duplicates, and reports merged into it)
        take its status, level, owner, deadline and area scope too. ``merged_into`` (a case id) links a
        report to the case it was merged into, taking that case's status, level, owner and deadline as
        they are now; merges are applied last, so a change of that case in the same batch is seen."""
        groups: dict[tuple, list[dict]] = {}
        merges = []
        for case_id, values in changes.items():
            values = dict(values)
            into = values.pop("merged_into", None)
            if into is not None:
                merges.append({"b_id": case_id, "b_into": into, **values})
                continue
            groups.setdefault(tuple(sorted(values)), []).append({"id": case_id, **values})
        for columns, rows in groups.items():
            update_rows(self.db, reports, rows, match="id")
            shared = [name for name in columns if name in _LINKED]
            if shared and any(name != "updated_at" for name in shared):
                update_rows(self.db, reports, [{"duplicate_of": row["id"], **{name: row[name] for name in shared}}
                                               for row in rows], match="duplicate_of")
        if merges:
            target = reports.alias("target")
            copied = {name: sa.select(target.c[name]).where(target.c.id == sa.bindparam("b_into")).scalar_subquery()
                      for name in ("status", "level", "owner_area_id", "owner_area_name", "deadline_at")}
            for row in merges:
                self.db.execute(reports.update().where(reports.c.id == sa.bindparam("b_id")).values(
                    duplicate_of=sa.bindparam("b_into"), **copied), row)


#: Statuses the public reads as closed: a verified fix, and a request refused (不予立案) or voided (作废).
ENDED_FOR_THE_PUBLIC = (Status.CLOSED, Status.REFUSED, Status.VOIDED)


def scoped(query: sa.Select, identity: Identity) -> sa.Select:
    """Reports ``identity`` may read: everyone their own; a grid worker, station or sub-center also
    those whose case its area owns (``shared.owners.in_scope``, as SQL); headquarters, supervisors
    and admins all. A report not yet dispatched has no owners: only its reporter and the city-wide
    roles see it."""
    own = reports.c.reporter == identity.user
    if identity.role == Role.DEPARTMENT:  # the reports of the cases assigned to it
        return query.where(sa.or_(own, reports.c.id.in_(sa.select(report_departments.c.report_id).where(
            report_departments.c.department_id == identity.department))))
    level = ROLE_SCOPE.get(Role(identity.role))
    if level is None:
        return query
    if not identity.area:
        return query.where(own)
    return query.where(sa.or_(own, reports.c[f"{level.area}_id"] == identity.area))


def _values(report: Report) -> dict:
    scope = {f"{name}_id" for name in SCOPED_AREA_LEVELS}
    values = {name: getattr(report, name) for name in _FILED if name not in scope}
    values.update(report.owners.columns(SCOPED_AREA_LEVELS))
    values["status"] = str(report.status)
    values["level"] = int(report.level) if report.level else None
    return values


#: What a linked report (a duplicate, or one merged) takes from the case it is linked to.
_LINKED = frozenset({"status", "level", "owner_area_id", "owner_area_name", "deadline_at", "updated_at",
                     "grid_id", "station_id", "subcenter_id"})
#: The columns a new report is written with (the others follow its case later).
_FILED = ("seq", "id", "idempotency_key", "reporter", "fingerprint", "category", "severity", "description", "lon",
          "lat", "accuracy_m", "client_time", "location_unverified", "status", "reported_at", "updated_at",
          "duplicate_of", "level", "owner_area_id", "grid_id", "station_id", "subcenter_id", "channel",
          "status_note")


def _report(row) -> Report | None:
    if row is None:
        return None
    values = row._asdict()
    for kept in ("followed_revisions", "verification_revision", "verification_revision_step"):
        values.pop(kept, None)
    values["status"] = Status(values["status"])
    values["level"] = Level(values["level"]) if values["level"] else None
    values["verifier_level"] = Level(values["verifier_level"]) if values["verifier_level"] else None
    values["owners"] = Owners.from_ids({name: values.pop(f"{name}_id") for name in SCOPED_AREA_LEVELS})
    return Report(**values)


class _Blocks:
    BLOCK = 64

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.reserved: list[int] = []
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            if not self.reserved:
                with self.engine.connect() as db:
                    self.reserved = list(reversed(db.execute(sa.text(
                        "SELECT nextval(pg_get_serial_sequence('reports', 'seq')) FROM generate_series(1, :n)"),
                        {"n": self.BLOCK}).scalars().all()))
                    db.commit()
            return self.reserved.pop()


_block_reservations: dict[sa.Engine, _Blocks] = {}
_block_lock = threading.Lock()


def _blocks(engine: sa.Engine) -> _Blocks:
    """The engine's block of reserved numbers (one per engine, made on first use)."""
    blocks = _block_reservations.get(engine)
    if blocks is None:
        with _block_lock:
            blocks = _block_reservations.setdefault(engine, _Blocks(engine))
    return blocks


@contextlib.contextmanager
def _committed(engine: sa.Engine):
    """A connection whose statements are committed as they run: PostgreSQL's autocommit, SQLite's own
    short transaction (the unit of work's connection is not open yet, or reads only)."""
    if engine.dialect.name == "postgresql":
        with _autocommit(engine).connect() as connection:
            yield connection
    else:
        with engine.begin() as connection:
            yield connection


@functools.cache
def _autocommit(engine: sa.Engine) -> sa.Engine:
    """``engine`` in autocommit mode, made once: ``execution_options`` builds a new engine proxy each
    call (0.2 ms of a report's accept path, cProfile)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _windows(connection: sa.Connection, subject: str, keys: list[str]) -> dict[str, Window]:
    rows = connection.execute(sa.select(rate_counts).where(rate_counts.c.subject == subject,
                                                           rate_counts.c.limit_key.in_(keys))).all()
    return {r.limit_key: Window(r.limit_key, r.window_start, r.window_seconds, r.cap, r.count) for r in rows}


@functools.cache
def _give_back_statement() -> sa.Update:
    """One use taken back from a window (``b_subject``, ``b_key``, ``b_start``) if it is still the current one."""
    return rate_counts.update().where(
        rate_counts.c.subject == sa.bindparam("b_subject"), rate_counts.c.limit_key == sa.bindparam("b_key"),
        rate_counts.c.window_start == sa.bindparam("b_start"), rate_counts.c.count > 0,
    ).values(count=rate_counts.c.count - 1)


_STATEMENTS: dict[bool, sa.Insert] = {}


def _count_uses(connection: sa.Connection, postgres: bool, subject: str,
                windows: list[Window]) -> tuple[dict[str, Window], bool]:
    """Count one use by ``subject`` in each of ``windows`` (``limits.Window``) on ``connection``, in its
    transaction: a conditional upsert per limit, which leaves a full window's row untouched; its row lock
    makes a person's concurrent requests wait for this one's commit or rollback. → (limit key → the window
    counted in, its start and count now; whether every limit counted). Stops at the first full window:
    the uses counted before it are in the first part, for the caller to roll back or take back."""
    statement = _allowance_statement(postgres)
    proposed = {w.key: w for w in windows}
    counted: dict[str, Window] = {}
    for w in windows:
        row = connection.execute(statement, {"subject": subject, "key": w.key, "start": w.start,
                                             "seconds": w.seconds, "cap": w.cap}).first()
        if row is None:
            return counted, False
        counted[row.limit_key] = replace(proposed[row.limit_key], start=row.window_start, count=row.count)
    return counted, True


@functools.cache
def _allowance_statement(postgres: bool, suffix: str = "") -> sa.Insert:
    """``store.use_allowance``'s upsert of one limit's row, made once with bound parameters (``subject``,
    ``key``, ``start``, ``seconds``, ``cap``, each but ``subject`` named with ``suffix``; one row at a time,
    as a statement of several rows is compiled anew each time: that cost more than the rest of accepting
    a report, cProfile)."""
    dialect = postgresql if postgres else sqlite
    insert = dialect.insert(rate_counts).values(
        subject=sa.bindparam("subject", type_=sa.String), limit_key=sa.bindparam(f"key{suffix}", type_=sa.String),
        window_start=sa.bindparam(f"start{suffix}", type_=sa.BigInteger),
        window_seconds=sa.bindparam(f"seconds{suffix}", type_=sa.Integer),
        count=sa.literal(1, type_=sa.Integer), cap=sa.bindparam(f"cap{suffix}", type_=sa.Integer))
    c, new = rate_counts.c, insert.excluded
    current = c.window_start + c.window_seconds > new.window_start  # the last window has not ended
    return insert.on_conflict_do_update(
        index_elements=[c.subject, c.limit_key],
        set_={"count": sa.case((current, c.count + 1), else_=new.count),
              "window_start": sa.case((current, c.window_start), else_=new.window_start),
              "window_seconds": new.window_seconds, "cap": new.cap},
        where=sa.or_(sa.not_(current), c.count < new.cap),
    ).returning(c.limit_key, c.window_start, c.count)


@functools.cache
def _counted_report_and_message(limits: int, wake: bool) -> sa.Select:
    """``_report_and_message`` counted against ``limits`` limits in the same statement: ``WITH counted_0 AS
    (INSERT INTO rate_counts … ON CONFLICT DO UPDATE … WHERE the window is not full RETURNING …), …,
    report AS (INSERT INTO reports SELECT … WHERE every limit counted ON CONFLICT DO NOTHING RETURNING
    seq), message AS (INSERT INTO outbox SELECT … FROM report RETURNING …) SELECT`` a row per limit
    counted (its key, window start and count) with whether the report was stored. Parameters: the
    report's columns, the outbox row's, ``subject``, and ``key_i``, ``start_i``, ``seconds_i``, ``cap_i``
    of each limit ``i``. Run in a transaction: a limit that did not count (its window full), or a report
    not stored (its idempotency key used), is the caller's rollback."""
    counts = [_allowance_statement(True, f"_{i}").cte(f"counted_{i}") for i in range(limits)]
    counted = sa.union_all(*(sa.select(c.c.limit_key, c.c.window_start, c.c.count) for c in counts)) \
        .cte("counted") if limits > 1 else counts[0]
    every = sa.select(sa.func.count()).select_from(counted).scalar_subquery() == limits
    filed = [c for c in reports.c if c.name in _FILED]
    report = (postgresql.insert(reports)
              .from_select([c.name for c in filed],
                           sa.select(*(sa.cast(sa.bindparam(c.name, type_=c.type), c.type) for c in filed))
                           .where(every))
              .on_conflict_do_nothing().returning(reports.c.seq).cte("report"))
    row = sa.select(sa.bindparam("message_id"), sa.bindparam("type"), sa.bindparam("body"),
                    sa.bindparam("created_at", type_=UTCDateTime)).select_from(report)
    returned = [outbox.outbox.c.id] + ([sa.func.pg_notify(sa.literal_column(f"'{outbox.CHANNEL}'"),
                                                          sa.literal_column("''"))] if wake else [])
    message = (outbox.outbox.insert().from_select(["message_id", "type", "body", "created_at"], row)
               .returning(*returned).cte("message"))
    stored = sa.select(sa.func.count()).select_from(message).scalar_subquery()
    return sa.select(counted.c.limit_key, counted.c.window_start, counted.c.count, stored.label("stored"))


def _report_and_message(wake: bool) -> sa.Insert:
    """``WITH report AS (INSERT INTO reports … ON CONFLICT DO NOTHING RETURNING seq)
    INSERT INTO outbox … SELECT … FROM report``: no outbox row when the report was not inserted. ``wake``:
    the outbox row's ``RETURNING`` also notifies the relay of another process (``outbox.CHANNEL``)."""
    if wake not in _STATEMENTS:
        report = (postgresql.insert(reports)
                  .values({c.name: sa.bindparam(c.name, type_=c.type) for c in reports.c if c.name in _FILED})
                  .on_conflict_do_nothing().returning(reports.c.seq).cte("report"))
        row = sa.select(sa.bindparam("message_id"), sa.bindparam("type"), sa.bindparam("body"),
                        sa.bindparam("created_at", type_=UTCDateTime)).select_from(report)
        returned = [outbox.outbox.c.id] + ([sa.func.pg_notify(sa.literal_column(f"'{outbox.CHANNEL}'"),
                                                              sa.literal_column("''"))] if wake else [])
        _STATEMENTS[wake] = (outbox.outbox.insert().from_select(["message_id", "type", "body", "created_at"], row)
                             .add_cte(report).returning(*returned))
    return _STATEMENTS[wake]
