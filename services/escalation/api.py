"""Escalation's HTTP interface: cases with their owners, deadlines and timelines."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from shared.clock import isoformat
from shared.vocabulary import Level
from shared.web import current_service, identity

blp = Blueprint("escalation", __name__, url_prefix="/escalation/v1", description="The four-level closed loop")


class CaseListArgs(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(["open", "resolved", "closed", "suspended"]))
    level = fields.Integer(validate=validate.Range(1, 4))
    area = fields.String()
    category = fields.String()
    overdue = fields.Boolean()
    page = fields.Integer(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, 500))


def case_view(case, steps=None) -> dict:
    owner = case.owner
    view = {
        "id": case.id, "number": case.number, "category": case.category, "severity": case.severity,
        "status": case.status, "level": case.level, "level_name": Level(case.level).area,
        "owner": {"level": case.level, "area_id": owner.area_id, "area_name": owner.area_name},
        "areas": case.areas, "deadline": isoformat(case.deadline) if case.deadline else None,
        "overdue": case.overdue, "opened_at": isoformat(case.opened_at), "updated_at": isoformat(case.updated_at),
    }
    if steps is not None:
        view["timeline"] = [{"at": isoformat(s.at), "action": s.action, "actor": s.actor,
                             "from_level": s.from_level, "to_level": s.to_level, "note": s.note} for s in steps]
    return view


@blp.route("/cases")
class Cases(MethodView):
    @blp.arguments(CaseListArgs, location="query")
    @blp.response(200)
    def get(self, args):
        """Cases the caller may see, newest first; filters: status, level, area, category, overdue."""
        caller = identity()
        service = current_service()
        filters = {k: args[k] for k in ("status", "level", "category", "area", "overdue") if k in args}
        with service.uow() as uow:
            found, total = uow.store.page(caller, now=service.clock.now(), page=args["page"],
                                          size=args["page_size"], **filters)
        return {"items": [case_view(c) for c in found], "total": total, "page": args["page"],
                "page_size": args["page_size"]}


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
        with current_service().uow() as uow:
            case = uow.store.get(case_id, caller)
            if case is None:
                abort(404, message="no such case")
            return case_view(case, uow.store.steps(case_id))
