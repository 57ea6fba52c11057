"""Escalation's tables and every query on them: the only place in escalation with SQL."""
from __future__ import annotations

import sqlalchemy as sa

from services.escalation.domain.cases import Case, Step
from shared.auth import Identity
from shared.db import UTCDateTime
from shared.uow import Store
from shared.vocabulary import ROLE_SCOPE, Role

metadata = sa.MetaData()

cases = sa.Table(
    "cases", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("owner_area_id", sa.String(64), nullable=False),
    sa.Column("grid_id", sa.String(64)),
    sa.Column("station_id", sa.String(64)),
    sa.Column("subcenter_id", sa.String(64)),
    sa.Column("hq_id", sa.String(64), nullable=False),
    sa.Column("areas", sa.JSON, nullable=False),
    sa.Column("hours", sa.JSON, nullable=False),
    sa.Column("overdue", sa.Boolean, nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("deadline_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The scheduler reads only due rows: its cost follows the cases that are due, not those open.
    sa.Index("ix_cases_deadline", "deadline_at", postgresql_where=sa.text("deadline_at IS NOT NULL"),
             sqlite_where=sa.text("deadline_at IS NOT NULL")),
    sa.Index("ix_cases_status_level", "status", "level"),
)

timeline = sa.Table(
    "timeline", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("from_level", sa.Integer),
    sa.Column("to_level", sa.Integer),
    sa.Column("note", sa.Text, nullable=False),
)

#: One row per (case, level) reached by escalation: the primary key makes a double escalation fail.
escalations = sa.Table(
    "escalations", metadata,
    sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
)

#: Escalation's copy of the active hierarchy (from ``areas.published``), without geometry.
areas = sa.Table(
    "areas", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parent", sa.String(64)),
)

#: The owner column of each scoped area level.
OWNER_COLUMN = {"grid": cases.c.grid_id, "station": cases.c.station_id, "subcenter": cases.c.subcenter_id,
                "hq": cases.c.hq_id}


def scoped(query: sa.Select, identity: Identity) -> sa.Select:
    """Only the cases ``identity`` may see (``shared.vocabulary.in_scope``, as SQL)."""
    level = ROLE_SCOPE.get(Role(identity.role))
    if level is None:
        return query
    return query.where(OWNER_COLUMN[level.area] == identity.area) if identity.area else query.where(sa.false())


class CaseStore(Store):
    def add(self, new_cases: list[Case]) -> None:
        now = max(case.opened_at for case in new_cases)
        self.db.execute(cases.insert(), [{"id": case.id, **_columns(case, now)} for case in new_cases])
        self._append_steps(new_cases)

    def save(self, case: Case, now) -> None:
        self.db.execute(cases.update().where(cases.c.id == case.id).values(**_columns(case, now)))
        self._append_steps([case])

    def get(self, case_id: str, identity: Identity | None = None, *, for_update: bool = False) -> Case | None:
        """The case (None if unknown or, given ``identity``, outside its area); ``for_update`` locks it."""
        query = sa.select(cases).where(cases.c.id == case_id)
        if identity is not None:
            query = scoped(query, identity)
        if for_update and self.postgres:
            query = query.with_for_update()
        row = self.db.execute(query).first()
        return _case(row) if row else None

    def steps(self, case_id: str) -> list[Step]:
        rows = self.db.execute(sa.select(timeline).where(timeline.c.case_id == case_id).order_by(timeline.c.id))
        return [Step(r.at, r.action, r.actor, r.from_level, r.to_level, r.note) for r in rows]

    def claim_due(self, now, limit: int) -> list[Case]:
        """Open cases whose deadline has passed, oldest deadline first; on PostgreSQL locked with
        ``SKIP LOCKED`` so several schedulers share the work and never take the same case."""
        query = (sa.select(cases).where(cases.c.deadline_at.is_not(None), cases.c.deadline_at <= now,
                                        cases.c.status == "open")
                 .order_by(cases.c.deadline_at).limit(limit))
        if self.postgres:
            query = query.with_for_update(skip_locked=True)
        return [_case(row) for row in self.db.execute(query)]

    def page(self, identity: Identity, *, now, page: int, size: int, status=None, level=None, category=None,
             area=None, overdue=None) -> tuple[list[Case], int]:
        """One page of the cases ``identity`` may see, newest first, and how many match in all."""
        c = cases.c
        query = scoped(sa.select(cases), identity)
        for column, value in ((c.status, status), (c.level, level), (c.category, category)):
            if value is not None:
                query = query.where(column == value)
        if area is not None:
            query = query.where(sa.or_(*(column == area for column in OWNER_COLUMN.values())))
        if overdue is not None:
            late = sa.or_(c.overdue, sa.and_(c.deadline_at.is_not(None), c.deadline_at < now))
            query = query.where(late if overdue else sa.not_(late))
        total = self.db.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = self.db.execute(query.order_by(c.opened_at.desc(), c.id).limit(size).offset((page - 1) * size))
        return [_case(row) for row in rows], total

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

    def _append_steps(self, changed: list[Case]) -> None:
        """The new timeline steps of each case, and one ``escalations`` row per level reached."""
        steps = [{"case_id": case.id, **vars(step)} for case in changed for step in case.steps]
        if steps:
            self.db.execute(timeline.insert(), steps)
        reached = [{"case_id": s["case_id"], "level": s["to_level"], "at": s["at"]} for s in steps
                   if s["action"] == "escalated"]
        if reached:
            self.db.execute(escalations.insert(), reached)
        for case in changed:
            case.steps.clear()


def _columns(case: Case, now) -> dict:
    ids = {level: (ref or {}).get("id") for level, ref in case.areas.items()}
    return {"number": case.number, "category": case.category, "severity": case.severity,
            "status": case.status, "level": case.level, "owner_area_id": case.owner.area_id,
            "grid_id": ids.get("grid"), "station_id": ids.get("station"), "subcenter_id": ids.get("subcenter"),
            "hq_id": ids["hq"], "areas": case.areas, "hours": {str(k): v for k, v in case.hours.items()},
            "overdue": case.overdue, "opened_at": case.opened_at, "deadline_at": case.deadline,
            "updated_at": now}


def _case(row) -> Case:
    case = Case(id=row.id, number=row.number, category=row.category, severity=row.severity, status=row.status,
                level=row.level, areas=row.areas, hours={int(k): v for k, v in row.hours.items()},
                opened_at=row.opened_at, deadline=row.deadline_at, overdue=row.overdue)
    case.updated_at = row.updated_at
    return case
