"""Escalation's HTTP interface: cases with their owners, deadlines and timelines."""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from services.escalation import store
from shared.auth import ROLE_SCOPE
from shared.clock import isoformat
from shared.fields import LIMITS, QueryInteger, Text
from shared.policy import LEVEL_NAMES
from shared.web import identity

blp = Blueprint("escalation", __name__, url_prefix="/escalation/v1", description="The four-level closed loop")
SCOPE_COLUMN = {"grid": store.cases.c.grid_id, "station": store.cases.c.station_id,
                "subcenter": store.cases.c.subcenter_id}


class CaseListArgs(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(["open", "resolved", "closed", "suspended"]))
    level = QueryInteger(validate=validate.Range(1, 4))
    area = Text(LIMITS["area_id"], min_length=1)
    category = Text(LIMITS["category"], min_length=1)
    overdue = fields.Boolean()
    page = QueryInteger(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = QueryInteger(load_default=50, validate=validate.Range(1, 500))


def deps():
    return current_app.extensions["gridcase"]


def case_view(row, steps=None) -> dict:
    owner_ref = row.areas[LEVEL_NAMES[row.level]] or {}
    view = {
        "id": row.id, "number": row.number, "category": row.category, "severity": row.severity,
        "status": row.status, "level": row.level, "level_name": LEVEL_NAMES[row.level],
        "owner": {"level": row.level, "area_id": owner_ref.get("id"), "area_name": owner_ref.get("name")},
        "areas": row.areas, "deadline": isoformat(row.deadline_at) if row.deadline_at else None,
        "overdue": row.overdue, "opened_at": isoformat(row.opened_at), "updated_at": isoformat(row.updated_at),
    }
    if steps is not None:
        view["timeline"] = [{"at": isoformat(s.at), "action": s.action, "actor": s.actor,
                             "from_level": s.from_level, "to_level": s.to_level, "note": s.note} for s in steps]
    return view


def _scope(query, caller):
    level = ROLE_SCOPE.get(caller.role)
    return query if level is None else query.where(SCOPE_COLUMN[level] == caller.area)


@blp.route("/cases")
class Cases(MethodView):
    @blp.arguments(CaseListArgs, location="query")
    @blp.response(200)
    def get(self, args):
        """Cases the caller may see, newest first; filters: status, level, area, category, overdue."""
        caller = identity()
        c = store.cases.c
        query = _scope(sa.select(store.cases), caller)
        for name in ("status", "level", "category"):
            if name in args:
                query = query.where(getattr(c, name) == args[name])
        if "area" in args:
            query = query.where(sa.or_(*(col == args["area"] for col in
                                         (c.grid_id, c.station_id, c.subcenter_id, c.hq_id))))
        if "overdue" in args:
            late = sa.or_(c.overdue, sa.and_(c.deadline_at.is_not(None), c.deadline_at < deps().clock.now()))
            query = query.where(late if args["overdue"] else sa.not_(late))
        page, size = args["page"], args["page_size"]
        with deps().engine.connect() as db:
            total = db.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            rows = db.execute(query.order_by(c.opened_at.desc(), c.id).limit(size).offset((page - 1) * size)).all()
        return {"items": [case_view(r) for r in rows], "total": total, "page": page, "page_size": size}


@blp.route("/cases/<case_id>")
class CaseDetail(MethodView):
    @blp.response(200)
    def get(self, case_id):
        """One case with its owner, deadline and timeline; 404 if unknown or outside the caller's area.

        ``GET /escalation/v1/cases/6f1c…`` → ``{"id": "6f1c…", "status": "open", "level": 1,
        "owner": {"level": 1, "area_id": "SC01-ST03-G0042", "area_name": "网格 0042"},
        "deadline": "2026-01-05T13:00:00.000Z", "timeline": [{"action": "opened", …}]}``
        """
        caller = identity()
        with deps().engine.connect() as db:
            row = store.get(db, case_id)
            if row is None or not caller.sees({"grid": row.grid_id, "station": row.station_id,
                                               "subcenter": row.subcenter_id}):
                abort(404, message="no such case")
            return case_view(row, store.steps(db, case_id))
