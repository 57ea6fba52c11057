"""Escalation's tables and every query on them: the only place in escalation with SQL.

A case row holds the domain's ``Case`` (``services.escalation.domain.cases``) plus the report it came
from; its timeline, the automatic escalations it went through and the audit trail are append-only
tables beside it. ``revision`` grows with every save: it is the case's ETag, and a save under an older
revision than the one loaded fails (``StaleCase``), so two writers never overwrite each other.
"""
from __future__ import annotations

import functools
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.escalation.domain import ownership, statistics
from services.escalation.domain.cases import ENDED, Case, ExtensionRequest, SuspensionRequest
from services.escalation.domain.deadlines import Limit, TimePolicy
from services.escalation.domain.departments import ACTIVE, Assignment
from services.escalation.domain.measures import measure, month_start, week_start
from services.escalation.domain.timeline import Outcome, Step, StepType
from services.escalation.domain.urges import Urge
from services.escalation.notify.tables import declare as declare_notifications
from shared import audit, pgnotify
from shared.auth import Identity
from shared.db import UTCDateTime, insert_rows
from shared.departments import Department, departments_table, load_departments, store_departments
from shared.owners import AreaRef, Owners
from shared.uow import Store
from shared.vocabulary import AREA_LEVELS, ROLE_SCOPE, SCOPED_AREA_LEVELS, Level, Role, Status
from shared.words import Problem

metadata = sa.MetaData()

cases = sa.Table(
    "cases", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("owner_area_id", sa.String(64), nullable=False),
    sa.Column("grid_id", sa.String(64)),
    sa.Column("station_id", sa.String(64)),
    sa.Column("subcenter_id", sa.String(64)),
    sa.Column("hq_id", sa.String(64), nullable=False),
    sa.Column("areas", sa.JSON, nullable=False),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("overdue", sa.Boolean, nullable=False),
    sa.Column("verification_overdue", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("triage", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("candidates", sa.JSON),
    sa.Column("resolved_level", sa.Integer),
    sa.Column("reworks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("extensions", sa.JSON),
    sa.Column("pending_extension", sa.JSON),
    sa.Column("pending_suspension", sa.JSON),  # 挂账 asked of the level above (domain.cases.SuspensionRequest)
    sa.Column("held_status", sa.String(16)),
    sa.Column("time_left", sa.JSON),
    sa.Column("timer_token", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("deadline_at", UTCDateTime),
    sa.Column("due_at", UTCDateTime),
    # the time model: the current level's clock start, the pending pre-deadline warnings and the last one fired
    sa.Column("clock_start", UTCDateTime),
    sa.Column("warnings", sa.JSON),
    sa.Column("warned", sa.Float),
    sa.Column("next_warning_at", UTCDateTime),
    # functional departments on the case (domain.departments.Assignment.to_dict), and whose fix is verified
    sa.Column("assignments", sa.JSON),
    sa.Column("resolved_department", sa.String(64)),
    sa.Column("urges", sa.JSON),  # 督办 on record (domain.urges.Urge.to_dict)
    sa.Column("deadline_basis", sa.String(16)),  # official, provisional, calendar_gap (working-time deadlines)
    sa.Column("resolved_by", sa.String(128)),  # who resolved it last (never its verifier)
    sa.Column("merged_into", sa.String(36)),  # merged: the case it duplicates
    # 承办人: the named handler, valid while the unit it was named in (an area id) holds the case
    sa.Column("assignee", sa.String(128)),
    sa.Column("assignee_unit", sa.String(64)),
    # the revision saved by the last staff transfer: a re-route proposed from before it is stale
    sa.Column("transferred_revision", sa.Integer),
    # the owners' names, lowest first ("网格 0042 / 工作站 3 / …"): what a search by place words reads
    sa.Column("place", sa.String(1000)),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # the report itself, from case.dispatched: staff need no second call to intake
    sa.Column("description", sa.Text),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("reporter", sa.String(128)),
    sa.Column("reported_at", UTCDateTime),
    sa.Index("ix_cases_deadline", "deadline_at", postgresql_where=sa.text("deadline_at IS NOT NULL"),
             sqlite_where=sa.text("deadline_at IS NOT NULL")),
    # The scheduler reads only due rows: its cost follows the cases that are due, not those open.
    sa.Index("ix_cases_due", "due_at", postgresql_where=sa.text("due_at IS NOT NULL"),
             sqlite_where=sa.text("due_at IS NOT NULL")),
    sa.Index("ix_cases_status_level", "status", "level"),
    sa.Index("ix_cases_number", "number"),
    sa.Index("ix_cases_assignee", "assignee"),
)

timeline = sa.Table(
    "timeline", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("scheduled_at", UTCDateTime),
    # A step that changed the case's owners (a transfer, a re-route): the area scope it left, so that the
    # boards that saw the case there are told it is gone (``live``). Not part of the chained step.
    sa.Column("left_grid_id", sa.String(64)),
    sa.Column("left_station_id", sa.String(64)),
    sa.Column("left_subcenter_id", sa.String(64)),
    # A step that ended departments' active parts on the case (their feedback: done or declined): those
    # departments (a list of ids), whose boards are told the case is gone (``live``). Not chained either.
    sa.Column("left_departments", sa.JSON),
)
#: The steps that change a case's owners, and so its area scope.
SCOPE_CHANGES = frozenset({StepType.TRANSFERRED, StepType.REROUTED})

#: One row per deadline that fired an automatic escalation: the key makes a double firing fail.
escalations = sa.Table(
    "escalations", metadata,
    sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True),
    sa.Column("scheduled_at", UTCDateTime, primary_key=True),
    sa.Column("fired_at", UTCDateTime, nullable=False),
)

#: The case's department assignments as rows (written from ``cases.assignments`` with every save, in
#: the same transaction): what a department's case list and the statistics by department query.
assignments = sa.Table(
    "assignments", metadata,
    sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("department_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("assigned_at", UTCDateTime, nullable=False),
    sa.Column("deadline_at", UTCDateTime),
    sa.Column("overdue", sa.Boolean, nullable=False),
    sa.Column("acknowledged_at", UTCDateTime),
    sa.Column("feedback_at", UTCDateTime),
    sa.Column("assignee", sa.String(128)),  # 承办人: the department's person handling it
    sa.Index("ix_assignments_department", "department_id", "assigned_at"),
    sa.Index("ix_assignments_feedback", "feedback_at"),  # statistics by closing period (by=closed)
)

#: The people seen working in each unit (an area id, or a department's id): who a case may be assigned
#: to (承办人). A person is recorded the first time their token reads or acts on cases in that unit.
people = sa.Table(
    "people", metadata,
    sa.Column("user", sa.String(128), primary_key=True),
    sa.Column("unit", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
)

#: Escalation's copy of the city's departments (from ``departments.published``).
departments = departments_table(metadata)

#: Escalation's copy of the active hierarchy (from ``areas.published``), without geometry.
areas = sa.Table(
    "areas", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parent", sa.String(64)),
)

#: One row per case: what its timeline says, for the closure-time statistics (``domain.measures.Facts``),
#: refreshed with every save. Periods are the case's local opening date, week (Monday) and month, and
#: for a closed case its local closing date, week and month (``by=closed``). ``facts_version`` is the
#: ``FACTS_VERSION`` a row was computed under: ``gridcase stats rebuild`` recomputes older rows.
case_facts = sa.Table(
    "case_facts", metadata,
    sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("reporter", sa.String(128)),
    sa.Column("grid_id", sa.String(64)),
    sa.Column("station_id", sa.String(64)),
    sa.Column("subcenter_id", sa.String(64)),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("opened_day", sa.Date, nullable=False),
    sa.Column("opened_week", sa.Date, nullable=False),
    sa.Column("opened_month", sa.Date, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed", sa.Integer, nullable=False),  # 0/1 flags: summed by the statistics
    sa.Column("escalated", sa.Integer, nullable=False),
    sa.Column("extended", sa.Integer, nullable=False),
    sa.Column("reworked", sa.Integer, nullable=False),
    sa.Column("overdue", sa.Integer, nullable=False),
    sa.Column("on_time", sa.Integer, nullable=False),
    sa.Column("on_time_ext", sa.Integer, nullable=False),
    sa.Column("ack_s", sa.Float),
    sa.Column("resolve_s", sa.Float),
    sa.Column("close_s", sa.Float),
    *(sa.Column(f"level{n}_s", sa.Float) for n in (1, 2, 3, 4)),
    sa.Column("urged", sa.Integer, nullable=False, server_default="0"),  # 督办: urged at all, urges late
    sa.Column("urges_late", sa.Integer, nullable=False, server_default="0"),
    sa.Column("respond_s", sa.Float),
    sa.Column("closed_day", sa.Date),
    sa.Column("closed_week", sa.Date),
    sa.Column("closed_month", sa.Date),
    sa.Column("on_time_final", sa.Integer, nullable=False, server_default="0"),
    *(sa.Column(f"level{n}_cal_s", sa.Float) for n in (1, 2, 3, 4)),
    sa.Column("facts_version", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_case_facts_day_station", "opened_day", "station_id"),
    sa.Index("ix_case_facts_closed_day_station", "closed_day", "station_id"),
)
#: What a ``case_facts`` row holds: 2 added the closing periods, the final-deadline on-time flag and the
#: calendar time at each level; 3 counts ``reworked`` for closed cases only (the rework rate's numerator).
FACTS_VERSION = 3

#: The statistics of the cases that opened in one period (a local day, week from Monday or month) under one
#: unit, at each unit level: ``grid`` rows (grid, its station and sub-center), ``station`` rows (grid_id '')
#: and ``subcenter`` rows (grid_id and station_id ''); '' also stands for "none" (a case in no grid).
#: Counts are sums; the quantiles exact (``percentile_cont``). Written by ``services/escalation/rollups.py``
#: from ``case_facts``, for the (day, sub-center) pairs ``rollup_marks`` names.
closure_rollups = sa.Table(
    "closure_rollups", metadata,
    sa.Column("period", sa.String(5), primary_key=True),
    sa.Column("level", sa.String(9), primary_key=True),
    sa.Column("period_start", sa.Date, primary_key=True),
    sa.Column("subcenter_id", sa.String(64), primary_key=True),
    sa.Column("station_id", sa.String(64), primary_key=True),
    sa.Column("grid_id", sa.String(64), primary_key=True),
    *(sa.Column(c, sa.Integer, nullable=False) for c in statistics.COUNTS),
    *(sa.Column(f"{c}_{q}", sa.Float) for c in statistics.QUANTILED for q in ("p50", "p90")),
)

#: The (local opening day, sub-center ('' for none)) pairs whose cases' statistics rows changed since their
#: rollups were computed: written in the transaction that changes the rows, taken by the next refresh.
rollup_marks = sa.Table(
    "rollup_marks", metadata,
    sa.Column("opened_day", sa.Date, primary_key=True),
    sa.Column("subcenter_id", sa.String(64), primary_key=True),
    sa.Column("marked_at", UTCDateTime, nullable=False),
)

#: Subscriptions and the notifications outbox (``services.escalation.notify``), written with the steps.
subscriptions, notifications = declare_notifications(metadata)

#: The tamper-evident audit trail (``shared.audit``): one row per timeline step, hash-chained.
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("case_id", sa.String(36)),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("previous_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("mac", sa.String(64)),  # HMAC-SHA256 of hash under GRIDCASE_AUDIT_KEY (shared.audit.row_mac)
)

#: Statuses of reports that are not cases for the statistics: waiting for acceptance (立案), or ended
#: without becoming one (不予立案, 作废, merged into the case they duplicate).
NOT_A_CASE = frozenset({Status.PENDING_ACCEPTANCE, Status.REFUSED, Status.VOIDED, Status.MERGED})
#: Early warning (预警, ``services/escalation/early_warnings.py``): the reports each rule watches, under a
#: coarse key — a cell of the rule's radius (``domain.early_warnings.cell``) or a grid id — so a new
#: report reads its neighbourhood only; ``held`` while the point's item is open or acknowledged.
warning_points = sa.Table(
    "warning_points", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("cell", sa.String(64), nullable=False),
    sa.Column("case_id", sa.String(36), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("item_id", sa.String(36)),
    sa.Column("held", sa.Boolean, nullable=False),
    sa.Index("ix_warning_points_cell", "rule", "category", "cell", "at"),
    sa.Index("ix_warning_points_item", "item_id"),
    sa.Index("ix_warning_points_age", "rule", "at"),
)

#: The early-warning items, and the cases in each.
warning_items = sa.Table(
    "warning_items", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("area_id", sa.String(64), nullable=False),
    sa.Column("areas", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("radius_m", sa.Float),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("history", sa.JSON, nullable=False),
    sa.Index("ix_warning_items_status", "status", "opened_at"),
)
warning_reports = sa.Table(
    "warning_reports", metadata,
    sa.Column("item_id", sa.String(36), sa.ForeignKey("warning_items.id"), primary_key=True),
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Index("ix_warning_reports_case", "case_id"),
)

#: The owner column of each area level.
OWNER_COLUMN = {name: cases.c[f"{name}_id"] for name in AREA_LEVELS}
_AUDIT_LOCK = zlib.crc32(b"gridcase-audit")
#: The audit key of each engine's service (``use_audit_key``): it lives in the process, never in the database.
_AUDIT_KEYS: weakref.WeakKeyDictionary[sa.Engine, bytes] = weakref.WeakKeyDictionary()


def use_audit_key(engine: sa.Engine, key: bytes) -> None:
    """Sign the audit rows written through ``engine`` with ``key`` (``shared.audit.row_mac``)."""
    _AUDIT_KEYS[engine] = key


class StaleCase(Problem):
    """The case changed since it was loaded (another writer saved it first; 412 to a person's action)."""

    status, code = 412, "case.stale"

    def __init__(self, case_ids: str):
        super().__init__()
        self.case_ids = case_ids


@dataclass(frozen=True)
class Report:
    """The report a case came from, as dispatch passed it on."""
    description: str | None
    lon: float | None
    lat: float | None
    reporter: str | None
    reported_at: datetime | None


def scoped(query: sa.Select, identity: Identity) -> sa.Select:
    """Only the cases ``identity`` may see (``shared.owners.in_scope``, as SQL); a functional department
    the cases assigned to it (any assignment, also one it fed back on)."""
    if identity.role == Role.DEPARTMENT:
        return query.where(cases.c.id.in_(sa.select(assignments.c.case_id).where(
            assignments.c.department_id == identity.department)))
    level = ROLE_SCOPE.get(Role(identity.role))
    if level is None:
        return query
    return query.where(OWNER_COLUMN[level.area] == identity.area) if identity.area else query.where(sa.false())


def on_board(query: sa.Select, identity: Identity) -> sa.Select:
    """``scoped`` for what a board holds (the live feed's ``live.visible``): for a functional department
    the cases where its part is active (assigned or acknowledged; its feedback, done or declined, takes
    the case off its board), for every other caller its area."""
    if identity.role == Role.DEPARTMENT:
        return query.where(cases.c.id.in_(sa.select(assignments.c.case_id).where(
            assignments.c.department_id == identity.department, assignments.c.status.in_(sorted(ACTIVE)))))
    return scoped(query, identity)


def _facts_scope(identity: Identity) -> list:
    """``scoped`` for the statistics rows: a station sees its own grids, a sub-center its stations."""
    if identity.role == Role.DEPARTMENT:
        return [sa.false()]
    level = ROLE_SCOPE.get(Role(identity.role))
    if level is None:
        return []
    return [case_facts.c[f"{level.area}_id"] == identity.area] if identity.area else [sa.false()]


#: ``page(assignee=NOBODY)``: the cases nobody handles.
NOBODY = "none"


def handled_by(identity: Identity, user: str):
    """SQL: the cases ``user`` handles (承办人) — for a department caller, its parts of cases; for the
    others, the case's handler in the unit holding it now (``Case.handler``)."""
    if identity.role == Role.DEPARTMENT:
        return cases.c.id.in_(sa.select(assignments.c.case_id).where(
            assignments.c.department_id == identity.department, assignments.c.assignee == user))
    return sa.and_(cases.c.assignee == user, cases.c.assignee_unit == cases.c.owner_area_id)


def unassigned(identity: Identity):
    """SQL: the cases the caller's unit holds now that nobody handles — a department's active parts with
    no assignee; a station's or sub-center's cases at their level, command's at headquarters; for a
    caller without a unit, every case without a handler."""
    c = cases.c
    if identity.role == Role.DEPARTMENT:
        return c.id.in_(sa.select(assignments.c.case_id).where(
            assignments.c.department_id == identity.department, assignments.c.assignee.is_(None),
            assignments.c.status.in_(sorted(ACTIVE))))
    nobody = sa.or_(c.assignee.is_(None), c.assignee_unit != c.owner_area_id)
    if identity.role in (Role.STATION, Role.SUBCENTER):
        return sa.and_(nobody, c.owner_area_id == identity.area)
    if identity.role == Role.COMMAND:
        return sa.and_(nobody, c.level == int(Level.HQ))
    return nobody


def late(now: datetime):
    """SQL for ``deadlines.is_late(deadline_at, now)`` or already flagged overdue: the list's filter."""
    return sa.or_(cases.c.overdue, sa.and_(cases.c.deadline_at.is_not(None), cases.c.deadline_at <= now))


def unit_kind(engine: sa.Engine, subject: str) -> str | None:
    """What ``subject`` is the id of among the city's units, in escalation's copies: an area's level
    (``grid``, ``station``, ``subcenter``, ``hq``), ``department``, or None. A token whose ``sub`` is a
    unit's id is refused (``shared.auth``, "Unit subjects")."""
    with engine.connect() as db:
        level = db.execute(sa.select(areas.c.level).where(areas.c.id == subject)).scalar()
        if level:
            return level
        found = db.execute(sa.select(departments.c.id).where(departments.c.id == subject)).first()
    return "department" if found else None


class CaseStore(Store):
    def __init__(self, connect, engine):
        super().__init__(connect, engine)
        self._revisions: dict[str, int] = {}
        self._loaded_owners: dict[str, Owners] = {}  # the owners each case was loaded with (a scope it may leave)
        self._loaded_parts: dict[str, frozenset[str]] = {}  # the departments with an active part, as loaded
        self._held_notifications: list[dict] = []
        self._held_audit: list[dict] = []
        self._steps_written = False

    def flush(self, envelopes) -> None:
        """At commit: the held notification rows (``hold_notifications``), the held audit rows
        (``append_audit``), then the outbox; on PostgreSQL, a transaction that wrote timeline steps
        notifies ``pgnotify.TIMELINE_CHANNEL`` (the live feeds of the API processes read them at once)."""
        self._write_held_notifications()
        self._write_held_audit()
        super().flush(envelopes)
        if self._steps_written and self.postgres:
            pgnotify.notify(self.db, pgnotify.TIMELINE_CHANNEL)
        self._steps_written = False

    # -- cases ---------------------------------------------------------------------------------

    def add(self, new: list[tuple[Case, Outcome, Report, list]], now: datetime) -> None:
        """New cases, each with the outcome of opening it, its report and its triage candidates."""
        insert_rows(self.db, cases, [
            {"id": case.id, "revision": 1, "candidates": candidates, **_report_columns(report),
             **_columns(case, now)} for case, _, report, candidates in new])
        self._write_assignments([case for case, _, _, _ in new], new_cases=True)
        self._record([(case, outcome) for case, outcome, _, _ in new],
                     opened={case.id: (list(outcome.steps), report.reporter) for case, outcome, report, _ in new})

    def save(self, case: Case, outcome: Outcome, now: datetime) -> int:
        """The case's new state and what happened; returns its new revision (``StaleCase`` if another
        writer saved it since it was loaded)."""
        self.save_all([(case, outcome)], now)
        return self._revisions[case.id]

    def save_all(self, changed: list[tuple[Case, Outcome]], now: datetime) -> None:
        """``save`` for many loaded cases at once (the scheduler's tick): one UPDATE statement run for
        all of them, and the timeline, audit and statistics rows written together (``StaleCase`` if
        any was saved by another writer since it was loaded)."""
        if not changed:
            return
        update = (cases.update().where(cases.c.id == sa.bindparam("b_id"), cases.c.revision == sa.bindparam("b_rev"))
                  .values(revision=sa.bindparam("b_next")))
        for case, outcome in changed:  # a staff transfer is stamped with the revision it is saved under
            ownership.stamp(case, outcome, self._revisions[case.id] + 1)
        rows = [{"b_id": case.id, "b_rev": self._revisions[case.id], "b_next": self._revisions[case.id] + 1,
                 **_columns(case, now)} for case, _ in changed]
        done = self.db.execute(update, rows)
        if done.rowcount != len(rows):  # sqlite3 and psycopg both count the rows of an executemany
            raise StaleCase(", ".join(case.id for case, _ in changed))
        for case, _ in changed:
            self._revisions[case.id] += 1
        self._write_assignments([case for case, _ in changed])
        self._record(changed)

    def _write_assignments(self, changed: list[Case], *, new_cases: bool = False) -> None:
        """The ``assignments`` rows of cases with departments, rewritten from the cases themselves."""
        with_departments = [case for case in changed if case.assignments]
        if not with_departments:
            return
        if not new_cases:
            self.db.execute(assignments.delete().where(
                assignments.c.case_id.in_([case.id for case in with_departments])))
        insert_rows(self.db, assignments, [
            {"case_id": case.id, "seq": seq, "department_id": a.department, "role": a.role, "status": a.status,
             "assigned_at": a.assigned_at, "deadline_at": a.deadline, "overdue": a.overdue,
             "acknowledged_at": a.acknowledged_at, "feedback_at": a.feedback_at, "assignee": a.assignee}
            for case in with_departments for seq, a in enumerate(case.assignments)])

    def get(self, case_id: str, identity: Identity | None = None, *, for_update: bool = False) -> Case | None:
        """The case (None if unknown or, given ``identity``, outside its area); ``for_update`` locks it."""
        query = sa.select(cases).where(cases.c.id == case_id)
        if identity is not None:
            query = scoped(query, identity)
        if for_update and self.postgres:
            query = query.with_for_update()
        row = self.db.execute(query).first()
        return self._case(row) if row else None

    def revision(self, case_id: str) -> int:
        """The revision of a case loaded through this store (its ETag)."""
        return self._revisions[case_id]

    def detail(self, case_id: str) -> tuple[Report, list, datetime]:
        """The report, triage candidates and last update of a loaded case."""
        row = self.db.execute(sa.select(cases.c.description, cases.c.lon, cases.c.lat, cases.c.reporter,
                                        cases.c.reported_at, cases.c.candidates, cases.c.updated_at)
                              .where(cases.c.id == case_id)).one()
        return Report(row.description, row.lon, row.lat, row.reporter, row.reported_at), row.candidates or [], \
            row.updated_at

    def steps(self, case_id: str) -> list[Step]:
        rows = self.db.execute(sa.select(timeline).where(timeline.c.case_id == case_id).order_by(timeline.c.id))
        return [Step(r.at, StepType(r.type), Level(r.level), r.actor, r.note, r.scheduled_at) for r in rows]

    def last_notes(self, case_ids: list[str], type_: StepType) -> dict[str, str]:
        """Case id → the note of its latest step of ``type_``, for the given cases that have one: one query
        for a page of cases (a list's items), not one per case."""
        if not case_ids:
            return {}
        rows = self.db.execute(sa.select(timeline.c.case_id, timeline.c.note)
                               .where(timeline.c.case_id.in_(case_ids), timeline.c.type == str(type_))
                               .order_by(timeline.c.id))
        return {r.case_id: r.note for r in rows}  # in order: the latest wins

    def claim_due(self, now: datetime, limit: int) -> list[Case]:
        """Cases with something due (``Case.due_at``) by ``now``, oldest first; on PostgreSQL locked with
        ``SKIP LOCKED`` so several schedulers share the work and never take the same case."""
        query = (sa.select(cases).where(cases.c.due_at.is_not(None), cases.c.due_at <= now)
                 .order_by(cases.c.due_at).limit(limit))
        if self.postgres:
            query = query.with_for_update(skip_locked=True)
        return [self._case(row) for row in self.db.execute(query)]

    def next_due(self) -> datetime | None:
        """The earliest ``due_at`` of any case (an index lookup), or ``None`` when nothing waits."""
        return self.db.execute(sa.select(sa.func.min(cases.c.due_at))).scalar_one()

    def page(self, identity: Identity, *, now: datetime, page: int, size: int, status=None, level=None,
             category=None, area=None, overdue=None, triage=None, due_within=None, warned=None,
             sort="deadline", q=None, assignee=None) -> tuple[list, int]:
        """One page of the cases ``identity`` may see, and how many match in all. Each item is
        ``(case, revision, report, updated_at)``. ``warned``: only cases warned at their current level
        of at least this threshold (0: any warning; a negative number: none yet). ``sort``: ``deadline``
        (the least time left first, no deadline last), ``warning`` (the highest warning first, then the
        least time left) or ``next_warning`` (the soonest warning still to come first). ``q``: words that
        each appear (any case) in the number, the description, the reporter or the owners' ids and
        names. ``assignee``: a user's cases (``handled_by``), or ``none`` for those of the caller's unit
        that nobody handles. A list of cases in working states only (``status`` naming no ended one: what
        a board asks for) holds what the caller's board holds (``on_board``: a department's active parts);
        any other list every case the caller may see (``scoped``: a department's every part)."""
        c = cases.c
        statuses = {status} if isinstance(status, str) else set(status or ())
        board = bool(statuses) and not statuses & {str(s) for s in ENDED}
        query = (on_board if board else scoped)(sa.select(cases), identity)
        for word in (q or "").split()[:10]:
            query = query.where(sa.or_(*(sa.func.lower(column).contains(word.lower(), autoescape=True)
                                         for column in (c.number, c.description, c.reporter, c.place))))
        if assignee is not None:
            query = query.where(unassigned(identity) if assignee == NOBODY else handled_by(identity, assignee))
        if status:
            query = query.where(c.status.in_([status] if isinstance(status, str) else list(status)))
        for column, value in ((c.level, level), (c.category, category), (c.triage, triage)):
            if value is not None:
                query = query.where(column == value)
        if area is not None:
            query = query.where(sa.or_(*(column == area for column in OWNER_COLUMN.values())))
        if overdue is not None:
            query = query.where(late(now) if overdue else sa.not_(late(now)))
        if due_within is not None:
            query = query.where(c.deadline_at.is_not(None), c.deadline_at <= due_within)
        if warned is not None:
            query = query.where(c.warned.is_(None) if warned < 0 else sa.and_(c.warned.is_not(None),
                                                                                c.warned >= warned))
        total = self.db.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        order = (c.deadline_at.is_(None), c.deadline_at, c.opened_at, c.id)
        if sort == "warning":
            order = (c.warned.is_(None), c.warned.desc(), *order)
        elif sort == "next_warning":
            order = (c.next_warning_at.is_(None), c.next_warning_at, *order)
        rows = self.db.execute(query.order_by(*order)
                               .limit(size).offset((page - 1) * size)).all()
        return [(self._case(r), r.revision, _report(r), r.updated_at) for r in rows], total

    #: The columns of ``board_rows``, in order: what the board's list, its filters and its map pins read.
    BOARD_COLUMNS = ("id", "number", "category", "severity", "status", "level", "owner_area_id", "areas", "time_left",
                     "late", "warned", "next_warning", "triage", "assignee", "reported_at", "lon", "lat",
                     "assignments", "urges", "revision")

    def board_rows(self, identity: Identity, statuses: list[str], limit: int, now: datetime) -> tuple[list, int]:
        """The cases of ``statuses`` that ``identity`` may see (``scoped``), in one query of only
        ``BOARD_COLUMNS`` (no ``Case`` is built), the least time left first (no deadline last, the earliest
        reported first; ties by id), at most ``limit``; and how many match in all (counted only when the
        limit was reached).

        Each row is a tuple in ``BOARD_COLUMNS`` order, computed by the database so that no timestamp is
        converted in Python: ``time_left`` seconds from ``now`` to the deadline, to the millisecond
        (negative: late; None without a deadline); ``late`` the list's ``late(now)``; ``next_warning`` (None
        without a deadline) and ``reported_at`` as ``shared.clock.isoformat`` writes them (ISO 8601 UTC,
        milliseconds, ``Z``); ``assignee`` only when the named handler is of the unit holding the case
        now; ``areas``, ``assignments`` and ``urges`` as their JSON text (or None): many cases share one
        text, parsed once by the reader."""
        c = cases.c
        deadline = c.deadline_at
        # cast, not type_coerce: PostgreSQL's driver would hand back a JSON column's value parsed
        text = {name: sa.cast(c[name], sa.Text).label(name) for name in ("areas", "assignments", "urges")}
        columns = [c.id, c.number, c.category, c.severity, c.status, c.level, c.owner_area_id, text["areas"],
                   self._seconds_until(deadline, now).label("time_left"), late(now).label("late"), c.warned,
                   sa.case((deadline.is_not(None), self._iso_text(c.next_warning_at))).label("next_warning"),
                   c.triage, sa.case((c.assignee_unit == c.owner_area_id, c.assignee)).label("assignee"),
                   self._iso_text(c.reported_at).label("reported_at"), c.lon, c.lat, text["assignments"],
                   text["urges"], c.revision]
        query = scoped(sa.select(*columns), identity).where(c.status.in_(statuses))
        # the board's order (board.js, its default sort): ties by id; without a deadline, the earliest reported
        # first — so a first screen (a small ``limit``) is the whole list's first rows
        undated = sa.case((deadline.is_(None), c.reported_at))
        rows = self.db.execute(query.order_by(deadline.is_(None), deadline, undated, c.id).limit(limit)).all()
        if len(rows) < limit:
            return rows, len(rows)
        return rows, self.db.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()

    def _iso_text(self, column):
        """SQL: the ``UTCDateTime`` ``column`` as ``shared.clock.isoformat`` writes it
        (``2026-12-05T05:52:28.713Z``: milliseconds, cut, not rounded), NULL for NULL. SQLite keeps
        SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff`` text (always the six digits), so it is cut and joined."""
        if self.postgres:
            return sa.func.to_char(sa.func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"', type_=sa.Text)
        stored = sa.type_coerce(column, sa.Text)
        return sa.func.substr(stored, 1, 10, type_=sa.Text) + "T" + sa.func.substr(stored, 12, 12, type_=sa.Text) + "Z"

    def _seconds_until(self, column, now: datetime):
        """SQL: seconds from ``now`` to the ``UTCDateTime`` ``column``, to the millisecond (negative when
        past), NULL for NULL."""
        if self.postgres:
            seconds = sa.cast(sa.extract("epoch", column - sa.literal(now, UTCDateTime)), sa.Numeric)
        else:  # julianday: days as a double, to the millisecond of the stored text
            seconds = (sa.func.julianday(column) - sa.func.julianday(sa.literal(now, UTCDateTime))) * 86400.0
        return sa.cast(sa.func.round(seconds, 3), sa.Float)

    def by_number(self, number: str, identity: Identity) -> Case | None:
        """The case with ``number`` if ``identity`` may see it (as ``get``)."""
        row = self.db.execute(scoped(sa.select(cases).where(cases.c.number == number), identity)).first()
        return self._case(row) if row else None

    # -- the people of a unit (承办人) -----------------------------------------------------------

    def remember(self, identity: Identity, now: datetime) -> None:
        """Record that ``identity``'s person works in its unit (a station or sub-center's area, command
        headquarters' area, or a department), once; grid workers, supervisors and admins hold no unit."""
        unit = self.unit_of(identity)
        if unit is None:
            return
        dialect = postgresql if self.postgres else sqlite
        self.db.execute(dialect.insert(people).values(user=identity.user, unit=unit, role=str(identity.role),
                                                      first_seen=now).on_conflict_do_nothing())

    def unit_of(self, identity: Identity) -> str | None:
        """The unit a person of ``identity`` works in: its area (station, sub-center), headquarters' area
        (command) or its department; None for a role that holds no unit."""
        if identity.role == Role.DEPARTMENT:
            return identity.department
        if identity.role == Role.COMMAND:
            return self.db.execute(sa.select(areas.c.id).where(areas.c.level == "hq").limit(1)).scalar()
        return identity.area if identity.role in (Role.STATION, Role.SUBCENTER) else None

    def units_of(self, user: str) -> list[str]:
        """The units ``user`` has been seen working in."""
        return list(self.db.execute(sa.select(people.c.unit).where(people.c.user == user)).scalars())

    def people_of(self, unit: str) -> list[str]:
        """The users seen working in ``unit``, by name."""
        return list(self.db.execute(sa.select(people.c.user).where(people.c.unit == unit)
                                    .order_by(people.c.user)).scalars())

    def last_step_id(self) -> int:
        """The id of the newest timeline row (0 when there is none): where a new live feed starts."""
        return self.db.execute(sa.select(sa.func.max(timeline.c.id))).scalar() or 0

    def steps_after(self, identity: Identity | None, after: int, limit: int, ids: list[int] | None = None
                    ) -> list[tuple[int, Step, Case, Report, datetime, Owners | None, frozenset[str]]]:
        """The timeline rows after ``after`` (a row id) of the cases ``identity`` may see now, or whose
        scope it saw before a step moved them out of it (None: every case, for the live feed's tailer,
        which scopes in memory), oldest first, at most ``limit``: ``(row id, step, case, report,
        updated_at, left, left_departments)`` — the live feed's events; ``left``: the scope a transfer or
        re-route left (``Owners`` known by id), else None; ``left_departments``: the departments whose
        active part the step ended. ``ids``: only those rows."""
        t = timeline.c
        query = (sa.select(t.id.label("step_id"), t.at.label("step_at"), t.type.label("step_type"),
                           t.level.label("step_level"), t.actor.label("step_actor"), t.note.label("step_note"),
                           t.scheduled_at.label("step_scheduled_at"), t.left_grid_id, t.left_station_id,
                           t.left_subcenter_id, t.left_departments, cases)
                 .join(cases, cases.c.id == t.case_id))
        if identity is not None:
            level = ROLE_SCOPE.get(Role(identity.role))
            if identity.role != Role.DEPARTMENT and level is not None and identity.area:
                query = query.where(sa.or_(OWNER_COLUMN[level.area] == identity.area,
                                           t[f"left_{level.area}_id"] == identity.area))
            else:
                query = scoped(query, identity)
        if ids is not None:
            query = query.where(t.id.in_(ids))
        rows = self.db.execute(query.where(t.id > after).order_by(t.id).limit(limit)).all()
        return [(r.step_id, Step(r.step_at, StepType(r.step_type), Level(r.step_level), r.step_actor, r.step_note,
                                 r.step_scheduled_at), self._case(r), _report(r), r.updated_at, _left_scope(r),
                 frozenset(r.left_departments or ())) for r in rows]

    def timer_health(self, now: datetime, grace_seconds: float) -> dict[str, int]:
        """The auditor's counts (after OnCall's ``check_escalation_finished``): working cases with no
        pending deadline, and deadlines past by more than ``grace_seconds`` not yet fired."""
        working = [Status.OPEN, Status.ACKNOWLEDGED, Status.REWORK]
        stuck = self.db.execute(sa.select(sa.func.count()).select_from(cases).where(
            cases.c.status.in_(working), cases.c.due_at.is_(None), sa.not_(cases.c.overdue))).scalar_one()
        threshold = now.timestamp() - grace_seconds
        unfired = self.db.execute(sa.select(sa.func.count()).select_from(cases).where(
            cases.c.due_at.is_not(None), cases.c.due_at < datetime.fromtimestamp(threshold, now.tzinfo))).scalar_one()
        return {"without_deadline": stuck, "unfired": unfired}

    # -- statistics ----------------------------------------------------------------------------

    def closure_stats(self, identity: Identity, group_by: str, period: str, day_from, day_to,
                      by: str = "opened") -> list[dict]:
        """The closure-time statistics of the cases ``identity`` may see that opened (``by="opened"``) or
        closed (``by="closed"``: closed now, on that local date) on local dates ``[day_from, day_to)``,
        one row per group and period of that date (``domain.statistics.row``), ordered by period and key;
        exact. By opening date, a grouping by grid, station or sub-center reads the rollups for the
        periods wholly inside the dates (``services.escalation.rollups``, refreshed first in this
        transaction: commit to keep the refresh) and the per-case rows for the partial periods at the
        edges; any other grouping, ``by="closed"`` (a case's closing moves it between periods), or one the
        rollups cannot answer, reads the per-case rows (``case_facts``)."""
        from services.escalation import rollups

        whole = (rollups.full_periods(period, day_from, day_to)
                 if by == "opened" and rollups.serves(identity, group_by) else None)
        if whole is not None:
            self.rollups.refresh()
            middle = self.rollups.read(identity, group_by, period, *whole)
            if middle is not None:
                first, end = whole
                head = self._closure_stats(identity, group_by, period, day_from, first) if day_from < first else []
                tail = self._closure_stats(identity, group_by, period, end, day_to) if end < day_to else []
                return head + middle + tail
        return self._closure_stats(identity, group_by, period, day_from, day_to, by)

    def _closure_stats(self, identity: Identity, group_by: str, period: str, day_from, day_to,
                       by: str = "opened") -> list[dict]:
        """``closure_stats`` from the per-case rows: counts summed in SQL, the quantiles ``percentile_cont``
        on PostgreSQL and the same interpolation in Python on SQLite.

        On PostgreSQL the dates are cut in two at a period boundary (``_halves``: no group spans the
        cut) and the halves run at once on two connections: PostgreSQL computes ordered-set aggregates
        in one process (``benchmarks/statistics.py``)."""
        f = case_facts.c
        key = {"grid": f.grid_id, "station": f.station_id, "subcenter": f.subcenter_id, "category": f.category,
               "severity": f.severity, "reporter": f.reporter}[group_by]
        when = f[f"{by}_{period}"]
        day = f[f"{by}_day"]
        sums = [sa.func.count().label("opened"), *(sa.func.sum(f[c]).label(c) for c in statistics.COUNTS[1:])]
        columns = statistics.QUANTILED
        field = statistics.GROUP_FIELDS[group_by]
        cohort = [f.closed == 1] if by == "closed" else []  # a reopened case is not closed: not counted

        def where(a, b):
            return [day >= a, day < b, *cohort, *_facts_scope(identity)]

        def out(r, quantiles):  # a result row (group, period, counts) and its quantiles → a statistics row
            counts = {c: int(r._mapping[c] or 0) for c in statistics.COUNTS}
            return statistics.row({field: r.k, "period_start": r.p.isoformat()}, counts, quantiles)

        def grouped(a, b, extra, k=key):
            return (sa.select(k.label("k"), when.label("p"), *sums, *extra).where(*where(a, b))
                    .group_by(k, when).order_by(when, k))

        if self.postgres:  # ordered-set aggregates sort the rows by group: byte order, not the locale's
            both = sa.literal_column("ARRAY[0.5, 0.9]::float8[]")
            extra = [sa.func.percentile_cont(both).within_group(f[c]).label(c) for c in columns]

            def read(dates):
                with self.engine.connect() as connection:
                    # The halves are the parallelism (PostgreSQL's own workers only add processes on
                    # top); each half sorts in memory; JIT compiling took longer than it saved.
                    for setting in ("max_parallel_workers_per_gather = 0", "work_mem = '64MB'", "jit = off"):
                        connection.exec_driver_sql(f"SET LOCAL {setting}")
                    return connection.execute(grouped(*dates, extra, key.collate("C"))).all()
            halves = _halves(day_from, day_to, period)
            with ThreadPoolExecutor(len(halves)) as pool:
                rows = [r for part in pool.map(read, halves) for r in part]
            return [out(r, {c: tuple(r._mapping[c]) if r._mapping[c] is not None else (None, None)
                            for c in columns}) for r in rows]
        values: dict[tuple, dict[str, list]] = {}
        for r in self.db.execute(sa.select(key.label("k"), when.label("p"), *(f[c] for c in columns))
                                 .where(*where(day_from, day_to))):
            bucket = values.setdefault((r.k, r.p), {c: [] for c in columns})
            for c in columns:
                if r._mapping[c] is not None:
                    bucket[c].append(r._mapping[c])
        quantiles = {group: {c: (statistics.quantile(v, 0.5), statistics.quantile(v, 0.9))
                             for c, v in cols.items()} for group, cols in values.items()}
        return [out(r, quantiles.get((r.k, r.p), {})) for r in self.db.execute(grouped(day_from, day_to, []))]

    def department_assignments(self, identity: Identity, start: datetime, end: datetime,
                               by: str = "opened") -> list[dict]:
        """The department assignments made (``by="opened"``) or closed by the department's feedback, done
        or declined (``by="closed"``), in ``[start, end)`` (UTC) on the cases ``identity`` may see:
        dicts of ``department_id``, ``status``, ``assigned_at``, ``deadline_at``, ``overdue``,
        ``acknowledged_at``, ``feedback_at`` (``statistics.department_rows`` groups them)."""
        a = assignments.c
        query = scoped(sa.select(a.department_id, a.status, a.assigned_at, a.deadline_at, a.overdue,
                                 a.acknowledged_at, a.feedback_at).join(cases, cases.c.id == a.case_id), identity)
        if by == "closed":
            query = query.where(a.status.in_(("done", "declined")), a.feedback_at >= start, a.feedback_at < end)
        else:
            query = query.where(a.assigned_at >= start, a.assigned_at < end)
        rows = self.db.execute(query).all()
        return [dict(r._mapping) for r in rows]

    def refresh_missing_facts(self, now: datetime, limit: int = 1000) -> int:
        """Compute the statistics row of up to ``limit`` cases that have none (cases opened before the
        statistics existed; not the reports that are no case, ``NOT_A_CASE``) or one computed under an older
        ``FACTS_VERSION``; returns how many."""
        missing = sa.select(cases).where(~sa.exists().where(
            case_facts.c.case_id == cases.c.id, case_facts.c.facts_version >= FACTS_VERSION),
            cases.c.status.notin_([str(s) for s in NOT_A_CASE])).limit(limit)
        found = [self._case(r) for r in self.db.execute(missing)]
        self._refresh_facts(found, now)
        return len(found)

    def timelines(self, identity: Identity | None, day_from, day_to) -> list[tuple[Case, list[Step], dict]]:
        """The cases (visible to ``identity``; all if None) that opened on local dates ``[day_from,
        day_to)``, each with its timeline and its group keys (for the what-if replay)."""
        f = case_facts.c
        query = sa.select(cases, f.reporter.label("fact_reporter")).join(case_facts, f.case_id == cases.c.id).where(
            f.opened_day >= day_from, f.opened_day < day_to)
        if identity is not None:
            query = query.where(*_facts_scope(identity))
        found = [(self._case(r), r) for r in self.db.execute(query.order_by(cases.c.opened_at, cases.c.id))]
        steps: dict[str, list[Step]] = {case.id: [] for case, _ in found}
        for chunk in range(0, len(found), 500):
            ids = [case.id for case, _ in found[chunk:chunk + 500]]
            for r in self.db.execute(sa.select(timeline).where(timeline.c.case_id.in_(ids)).order_by(timeline.c.id)):
                steps[r.case_id].append(Step(r.at, StepType(r.type), Level(r.level), r.actor, r.note, r.scheduled_at))
        return [(case, steps[case.id], {"reporter": row.fact_reporter}) for case, row in found]

    # -- notifications (their queries: services/escalation/notify/store.py) ---------------------

    @property
    def notifications(self):
        """The subscriptions and the notifications outbox, in this unit of work's transaction (the rows
        held so far are written first, so that every query through it sees them)."""
        from services.escalation.notify.store import NotificationStore

        self._write_held_notifications()
        return NotificationStore(self.db)

    def hold_notifications(self, rows: list[dict]) -> None:
        """New notification rows (``notify.outbox``), written in this transaction at commit, or before any
        query through ``notifications``: a consumer's batch of cases writes them with one statement."""
        self._held_notifications += rows

    def _write_held_notifications(self) -> None:
        rows, self._held_notifications = self._held_notifications, []
        if rows:
            insert_rows(self.db, notifications, rows)

    def reporter(self, case_id: str) -> str | None:
        """Who filed the case's report (None for a case not stored yet)."""
        return self.db.execute(sa.select(cases.c.reporter).where(cases.c.id == case_id)).scalar()

    # -- areas ---------------------------------------------------------------------------------

    def replace_areas(self, version: int, items) -> bool:
        """Keep the newest published version only; False if ``version`` is older than the copy."""
        current = self.db.execute(sa.select(sa.func.max(areas.c.version))).scalar()
        if current is not None and current > version:
            return False
        self.db.execute(areas.delete())
        if items:
            self.db.execute(areas.insert(), [{"version": version, "id": a.id, "level": a.level, "name": a.name,
                                              "parent": a.parent} for a in items])
        return True

    def area_names(self) -> dict[str, str]:
        """Every area of escalation's copy of the hierarchy: id → name."""
        return {r.id: r.name for r in self.db.execute(sa.select(areas.c.id, areas.c.name))}

    # -- departments ---------------------------------------------------------------------------

    def replace_departments(self, version: int, items) -> bool:
        """Keep the newest published departments only; False if ``version`` is older than the copy."""
        return store_departments(self.db, departments, version, items)

    def departments(self) -> list[Department]:
        """The city's departments (escalation's copy), by id."""
        return load_departments(self.db, departments)

    @property
    def rollups(self):
        """The closure statistics' rollups (``services.escalation.rollups``), in this store's transaction."""
        from services.escalation.rollups import RollupStore  # it reads this module's tables

        return RollupStore(self)

    @property
    def early_warnings(self):
        """The early-warning points and items (``services.escalation.warning_store``), in this store's
        transaction."""
        from services.escalation.warning_store import WarningStore  # it reads this module's tables

        return WarningStore(self)

    def owners_of(self, area_id: str) -> tuple[Level, Owners] | None:
        """The level of an area of the active hierarchy and the owners of a case placed there (the
        area and every area above it); None if there is no such area."""
        refs: dict[str, AreaRef] = {}
        level = None
        current = area_id
        while current is not None:
            row = self.db.execute(sa.select(areas).where(areas.c.id == current)).first()
            if row is None or row.level in refs:
                break
            refs[row.level] = AreaRef(row.id, row.name)
            level = level or Level.of(row.level)
            current = row.parent
        return (level, Owners(**refs)) if level is not None and "hq" in refs else None

    # -- the audit trail -----------------------------------------------------------------------

    def audit_rows(self, after: int = 0):
        """The audit rows after ``seq``, in order (streamed)."""
        self._write_held_audit()
        return self.db.execute(sa.select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq)
                               .execution_options(yield_per=2000))

    def audit_head(self):
        """The last audit row (None for an empty trail): where a checkpoint is taken."""
        self._write_held_audit()
        return self._audit_head()

    def _audit_head(self):
        return self.db.execute(sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).first()

    def audit_steps_by_case(self):
        """The audit rows of cases, by case id (code-point order) and ``seq`` (streamed), for
        ``shared.audit.timeline_difference``."""
        self._write_held_audit()
        case_id = audit_log.c.case_id.collate("C") if self.postgres else audit_log.c.case_id
        return self.db.execute(sa.select(audit_log).where(audit_log.c.case_id.is_not(None))
                               .order_by(case_id, audit_log.c.seq).execution_options(yield_per=2000))

    def timeline_by_case(self):
        """Every timeline row, by case id (code-point order) and row id (streamed)."""
        case_id = timeline.c.case_id.collate("C") if self.postgres else timeline.c.case_id
        return self.db.execute(sa.select(timeline).order_by(case_id, timeline.c.id)
                               .execution_options(yield_per=2000))

    def _record(self, changed: list[tuple[Case, Outcome]], opened: dict | None = None) -> None:
        """Append the steps to the timeline, the automatic escalations to ``escalations`` (a deadline
        fires once) and every step to the hash-chained audit trail, and refresh the statistics rows, in
        the caller's transaction. ``opened``: new cases' whole timelines and reporters (no read back)."""
        steps = [(case, step) for case, outcome in changed for step in outcome.steps]
        if not steps:
            return
        last = {case.id: outcome.steps[-1] for case, outcome in changed if outcome.steps}
        self._steps_written = True
        insert_rows(self.db, timeline, [
            {"case_id": case.id, "at": s.at, "type": str(s.type), "level": int(s.level), "actor": s.actor,
             "note": s.note, "scheduled_at": s.scheduled_at, **self._left(case, s),
             "left_departments": self._parts_ended(case) if s is last[case.id] else None} for case, s in steps])
        fired = [{"case_id": case.id, "level": int(s.level), "scheduled_at": s.scheduled_at, "fired_at": s.at}
                 for case, s in steps if s.type == StepType.ESCALATED and s.scheduled_at is not None]
        if fired:
            insert_rows(self.db, escalations, fired)
        self._append_audit(steps)
        self._refresh_facts([case for case, outcome in changed if outcome.steps], steps[-1][1].at, opened)

    def _refresh_facts(self, changed: list[Case], now: datetime, opened: dict | None = None) -> None:
        """Recompute the statistics row of each changed case from its whole timeline (read back, unless
        ``opened`` gives it: case id → (steps, reporter) of a case that has just opened)."""
        by_id = {case.id: case for case in changed}
        if not by_id:
            return
        ids = list(by_id)
        if opened is not None and set(opened) >= set(ids):
            timelines = {case_id: opened[case_id][0] for case_id in ids}
            reporters = {case_id: opened[case_id][1] for case_id in ids}
        else:
            timelines = {case_id: [] for case_id in ids}
            for r in self.db.execute(sa.select(timeline).where(timeline.c.case_id.in_(ids))
                                     .order_by(timeline.c.id)):
                timelines[r.case_id].append(Step(r.at, StepType(r.type), Level(r.level), r.actor, r.note,
                                                 r.scheduled_at))
            reporters = dict(self.db.execute(sa.select(cases.c.id, cases.c.reporter)
                                             .where(cases.c.id.in_(ids))).all())
        rows = []
        for case_id, steps in timelines.items():
            case = by_id[case_id]
            if not steps or steps[0].type != StepType.OPENED or case.status in NOT_A_CASE:
                continue  # a report not (yet) accepted, refused, voided or merged is no case to count
            facts = measure(steps, case.policy, case.owners, case.extensions, now,
                            closed_now=case.status == Status.CLOSED)
            rows.append(_facts_row(case, reporters.get(case_id), facts))
        gone = []
        if opened is None:  # the old rows' (day, sub-center): a case moved elsewhere leaves its old groups
            gone = self.db.execute(case_facts.delete().where(case_facts.c.case_id.in_(ids)).returning(
                case_facts.c.opened_day, case_facts.c.subcenter_id)).all()
        if rows:
            insert_rows(self.db, case_facts, rows)
        self.rollups.mark([*gone, *((r["opened_day"], r["subcenter_id"]) for r in rows)], now)

    def _append_audit(self, steps: list[tuple[Case, Step]]) -> None:
        self.append_audit([{"at": step.at, "actor": step.actor, "action": str(step.type), "case_id": case.id,
                            "detail": audit.step_detail(step.level, step.note, step.scheduled_at)}
                           for case, step in steps])

    def append_audit(self, entries: list[dict]) -> None:
        """Append rows to the hash-chained audit trail, in the caller's transaction, signed with the audit
        key when the service has one: each entry is ``{"at", "actor", "action", "case_id" (or None: not a
        case's timeline step), "detail"}`` (``shared.audit.append``). They are held until the commit
        (``flush``, or a read of the trail in this transaction) and written then, all of the transaction's
        at once: the trail's lock, which serialises every writer, is held from there to the commit only,
        and is the last lock a transaction takes."""
        self._held_audit += entries

    def _write_held_audit(self) -> None:
        entries, self._held_audit = self._held_audit, []
        if not entries:
            return
        if self.postgres:  # appends are serialised: each row names the hash of the one before
            self.db.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK})
        key = _AUDIT_KEYS.get(self.engine)
        last = self._audit_head()
        previous = audit.Entry(last.seq, last.at, last.actor, last.action, last.case_id, last.detail,
                               last.previous_hash, last.hash, last.mac) if last else None
        if key is not None and last is not None and last.mac is None:  # rows written before the trail had a key
            unsigned = self.db.execute(sa.select(audit_log.c.seq, audit_log.c.hash).where(audit_log.c.mac.is_(None)))
            self.db.execute(audit_log.update().where(audit_log.c.seq == sa.bindparam("b_seq")),
                            [{"b_seq": r.seq, "mac": audit.row_mac(key, r.hash)} for r in unsigned.all()])
        rows = []
        for entry in entries:
            previous = audit.append(previous, **entry, key=key)
            rows.append(vars(previous))
        insert_rows(self.db, audit_log, rows)

    def _left(self, case: Case, step: Step) -> dict:
        """The ``left_*`` columns of a timeline row: the scope the case was loaded with, when the step
        changed its owners (none otherwise)."""
        before = self._loaded_owners.get(case.id)
        if step.type not in SCOPE_CHANGES or before is None or before.scope() == case.owners.scope():
            return dict.fromkeys(_LEFT_COLUMNS)  # every row names them all: one executemany
        return {f"left_{name}_id": area for name, area in before.scope().items()}

    def _parts_ended(self, case: Case) -> list[str] | None:
        """The departments whose active part on ``case`` (assigned or acknowledged) the save being
        written ended: the ``left_departments`` of its last step (None: none ended)."""
        now_active = {a.department for a in case.assignments if a.active}
        return sorted(self._loaded_parts.get(case.id, frozenset()) - now_active) or None

    def _case(self, row) -> Case:
        self._revisions[row.id] = row.revision
        owners = self._loaded_owners[row.id] = Owners.from_json(row.areas)
        self._loaded_parts[row.id] = frozenset(a["department"] for a in row.assignments or ()
                                               if a.get("status") in ACTIVE)
        return Case(
            id=row.id, number=row.number, category=row.category, severity=row.severity,
            owners=owners,
            policy=TimePolicy.from_dict(row.policy), opened_at=row.opened_at, level=Level(row.level),
            status=Status(row.status), deadline=row.deadline_at, timer_token=row.timer_token, overdue=row.overdue,
            verification_overdue=row.verification_overdue, triage=row.triage,
            resolved_level=Level(row.resolved_level) if row.resolved_level else None, reworks=row.reworks,
            extensions=tuple(Limit.from_dict(x) for x in row.extensions or ()),
            pending_extension=ExtensionRequest.from_dict(row.pending_extension) if row.pending_extension else None,
            pending_suspension=SuspensionRequest.from_dict(row.pending_suspension) if row.pending_suspension else None,
            held_status=Status(row.held_status) if row.held_status else None,
            time_left=Limit.from_dict(row.time_left) if row.time_left else None,
            clock_start=row.clock_start or row.opened_at, warned=row.warned, deadline_basis=row.deadline_basis,
            warnings=tuple((float(w["threshold"]), datetime.fromisoformat(w["at"])) for w in row.warnings or ()),
            assignments=tuple(Assignment.from_dict(a) for a in row.assignments or ()),
            resolved_department=row.resolved_department, resolved_by=row.resolved_by, merged_into=row.merged_into,
            assignee=row.assignee, assignee_unit=row.assignee_unit, transferred_revision=row.transferred_revision,
            urges=tuple(Urge.from_dict(u) for u in row.urges or ()))


def _columns(case: Case, now: datetime) -> dict:
    return {"number": case.number, "category": case.category, "severity": case.severity,
            "status": str(case.status), "level": int(case.level), "owner_area_id": case.owner.area_id,
            **case.owners.columns(), "areas": case.owners.to_json(),
            "policy": _policy_snapshot(case.policy), "overdue": case.overdue,
            "verification_overdue": case.verification_overdue, "triage": case.triage,
            "resolved_level": int(case.resolved_level) if case.resolved_level else None, "reworks": case.reworks,
            "extensions": [x.to_dict() for x in case.extensions],
            "pending_extension": case.pending_extension.to_dict() if case.pending_extension else None,
            "pending_suspension": case.pending_suspension.to_dict() if case.pending_suspension else None,
            "held_status": str(case.held_status) if case.held_status else None,
            "time_left": case.time_left.to_dict() if case.time_left else None, "timer_token": case.timer_token,
            "opened_at": case.opened_at, "deadline_at": case.deadline, "due_at": case.due_at, "updated_at": now,
            "clock_start": case.clock_start, "warned": case.warned, "deadline_basis": case.deadline_basis,
            "warnings": [{"threshold": p, "at": at.isoformat()} for p, at in case.warnings],
            "assignments": [a.to_dict() for a in case.assignments] or None,
            "resolved_department": case.resolved_department, "resolved_by": case.resolved_by,
            "merged_into": case.merged_into, "assignee": case.assignee, "assignee_unit": case.assignee_unit,
            "transferred_revision": case.transferred_revision,
            "place": _place(case.owners), "urges": [u.to_dict() for u in case.urges] or None,
            "next_warning_at": case.warnings[0][1] if case.warnings and case.due_at is not None else None}


def _place(owners: Owners) -> str:
    """The owners' ids and names, lowest first: the words a search by place (``page(q=…)``) matches."""
    refs = [owners.at(level) for level in Level]
    return " / ".join(f"{ref.id} {ref.name}".strip() for ref in refs if ref is not None)[:1000]


def _halves(day_from: date, day_to: date, period: str) -> list[tuple[date, date]]:
    """``[day_from, day_to)`` cut at the start of the period (day, week from Monday, month) nearest its
    middle, so no period is split; the whole range when no such cut falls strictly inside."""
    middle = day_from + (day_to - day_from) / 2
    cut = {"day": middle, "week": week_start(middle), "month": month_start(middle)}[period]
    return [(day_from, cut), (cut, day_to)] if day_from < cut < day_to else [(day_from, day_to)]


@functools.lru_cache(maxsize=256)
def _policy_snapshot(policy: TimePolicy) -> dict:
    """``policy.to_dict()``, remembered: a city has a few dozen distinct snapshots (category × severity
    × calendar) and writing one per case cost a tenth of opening it (cProfile, 5,000 cases). The dict
    is shared: it is only ever serialised into the ``policy`` column, never changed."""
    return policy.to_dict()


def _facts_row(case: Case, reporter: str | None, facts) -> dict:
    return {"case_id": case.id, "category": case.category, "severity": case.severity, "reporter": reporter,
            **case.owners.columns(SCOPED_AREA_LEVELS),
            "opened_at": facts.opened_at, "opened_day": facts.opened_day,
            "opened_week": week_start(facts.opened_day), "opened_month": month_start(facts.opened_day),
            "closed_at": facts.closed_at, "closed": int(facts.closed), "escalated": int(facts.escalated),
            "extended": int(facts.extended), "reworked": int(facts.reworked), "overdue": int(facts.overdue),
            "on_time": int(facts.on_time), "on_time_ext": int(facts.on_time_with_extensions),
            "ack_s": facts.time_to_acknowledge, "resolve_s": facts.time_to_resolve, "close_s": facts.time_to_close,
            "urged": int(facts.urged), "urges_late": facts.urges_late, "respond_s": facts.time_to_respond,
            **{f"level{n}_s": facts.time_at_level.get(n) for n in (1, 2, 3, 4)},
            "closed_day": facts.closed_day,
            "closed_week": week_start(facts.closed_day) if facts.closed_day else None,
            "closed_month": month_start(facts.closed_day) if facts.closed_day else None,
            "on_time_final": int(facts.on_time_final),
            **{f"level{n}_cal_s": facts.calendar_at_level.get(n) for n in (1, 2, 3, 4)},
            "facts_version": FACTS_VERSION}


def _report_columns(report: Report) -> dict:
    return {"description": report.description, "lon": report.lon, "lat": report.lat, "reporter": report.reporter,
            "reported_at": report.reported_at}


_LEFT_COLUMNS = tuple(f"left_{name}_id" for name in SCOPED_AREA_LEVELS)


def _left_scope(row) -> Owners | None:
    """The scope a timeline row's step left (``left_*`` columns), or None."""
    ids = {name: getattr(row, f"left_{name}_id") for name in SCOPED_AREA_LEVELS}
    return Owners.from_ids(ids) if any(ids.values()) else None


def _report(row) -> Report:
    return Report(row.description, row.lon, row.lat, row.reporter, row.reported_at)
