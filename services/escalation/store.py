"""Escalation's tables (migrations in ``migrations/``) and the mapping between rows and ``Case``."""
from __future__ import annotations

import sqlalchemy as sa

from services.escalation.domain.cases import Case, Step
from shared.db import UTCDateTime

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
)

timeline = sa.Table(
    "timeline", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(36), nullable=False),
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
    sa.Column("case_id", sa.String(36), primary_key=True),
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


def replace_areas(db: sa.Connection, version: int, items: list[dict]) -> bool:
    """Keep the newest published version only; False if ``version`` is older than the copy."""
    current = db.execute(sa.select(sa.func.max(areas.c.version))).scalar()
    if current is not None and current > version:
        return False
    db.execute(areas.delete())
    if items:
        db.execute(areas.insert(), [{"version": version, "id": a["id"], "level": a["level"], "name": a["name"],
                                     "parent": a.get("parent")} for a in items])
    return True


def _columns(case: Case, now) -> dict:
    ids = {level: (ref or {}).get("id") for level, ref in case.areas.items()}
    return {"number": case.number, "category": case.category, "severity": case.severity,
            "status": case.status, "level": case.level, "owner_area_id": case.owner.area_id,
            "grid_id": ids.get("grid"), "station_id": ids.get("station"), "subcenter_id": ids.get("subcenter"),
            "hq_id": ids["hq"], "areas": case.areas, "hours": {str(k): v for k, v in case.hours.items()},
            "overdue": case.overdue, "opened_at": case.opened_at, "deadline_at": case.deadline,
            "updated_at": now}


def insert(db: sa.Connection, new_cases: list[Case], now) -> None:
    db.execute(cases.insert(), [{"id": case.id, **_columns(case, now)} for case in new_cases])
    _append_steps(db, new_cases)


def update(db: sa.Connection, case: Case, now) -> None:
    db.execute(cases.update().where(cases.c.id == case.id).values(**_columns(case, now)))
    _append_steps(db, [case])


def _append_steps(db: sa.Connection, changed: list[Case]) -> None:
    """The new timeline steps of each case, and one ``escalations`` row per level reached."""
    steps = [{"case_id": case.id, **vars(step)} for case in changed for step in case.steps]
    if steps:
        db.execute(timeline.insert(), steps)
    reached = [{"case_id": s["case_id"], "level": s["to_level"], "at": s["at"]} for s in steps
               if s["action"] == "escalated"]
    if reached:
        db.execute(escalations.insert(), reached)
    for case in changed:
        case.steps.clear()


def from_row(row) -> Case:
    return Case(id=row.id, number=row.number, category=row.category, severity=row.severity, status=row.status,
                level=row.level, areas=row.areas, hours={int(k): v for k, v in row.hours.items()},
                opened_at=row.opened_at, deadline=row.deadline_at, overdue=row.overdue)


def get(db: sa.Connection, case_id: str, *, for_update: bool = False):
    query = sa.select(cases).where(cases.c.id == case_id)
    if for_update and db.dialect.name == "postgresql":
        query = query.with_for_update()
    return db.execute(query).first()


def steps(db: sa.Connection, case_id: str) -> list[Step]:
    rows = db.execute(sa.select(timeline).where(timeline.c.case_id == case_id).order_by(timeline.c.id)).all()
    return [Step(r.at, r.action, r.actor, r.from_level, r.to_level, r.note) for r in rows]


def claim_due(db: sa.Connection, now, limit: int) -> list:
    query = (sa.select(cases).where(cases.c.deadline_at.is_not(None), cases.c.deadline_at <= now,
                                    cases.c.status == "open")
             .order_by(cases.c.deadline_at).limit(limit))
    if db.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return db.execute(query).all()
