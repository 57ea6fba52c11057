"""Escalation's HTTP interface for command-center staff: the cases of their area, each with its report,
owner, deadline and timeline, and the actions of the closed loop (with ``ETag`` / ``If-Match``)."""
from __future__ import annotations

from datetime import timedelta

from flask import Response, request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from services.escalation import handlers, live
from services.escalation.domain import actions
from services.escalation.domain.deadlines import UNIT_SECONDS
from services.escalation.domain.errors import Refused
from services.escalation.domain.timeline import StepType
from services.escalation.store import StaleCase
from shared.auth import ROLES
from shared.clock import isoformat
from shared.fields import LIMITS, JsonFloat, JsonInteger, QueryInteger, Text
from shared.vocabulary import Status
from shared.web import Blueprint, current_service, identity, roles

blp = Blueprint("escalation", __name__, url_prefix="/escalation/v1", description="The four-level closed loop")
#: Actions staff take here; ``verify`` comes from the grid worker through intake (with photos).
HTTP_ACTIONS = tuple(name for name in actions.ACTIONS if name != "verify")


class Statuses(fields.String):
    """One status or several, comma-separated (``open,acknowledged``) → a list; a problem names ``status``."""

    CHOICES = tuple(s.value for s in Status if s != Status.REPORTED)

    def _deserialize(self, value, attr, data, **kwargs) -> list[str]:
        names = super()._deserialize(value, attr, data, **kwargs).split(",")
        unknown = [n for n in names if n not in self.CHOICES]
        if unknown:
            raise ValidationError(f"Must be one of: {', '.join(self.CHOICES)} (or several, comma-separated).")
        return names


class CaseListArgs(Schema):
    class Meta:
        unknown = RAISE

    status = Statuses(metadata={"description": "one status, or several separated by commas (open,rework)"})
    level = QueryInteger(validate=validate.Range(1, 4))
    area = Text(LIMITS["area_id"], min_length=1)
    category = Text(LIMITS["category"], min_length=1)
    overdue = fields.Boolean(metadata={"description": "past the deadline (or flagged overdue at level 4)"})
    triage = fields.Boolean(metadata={"description": "a point in no grid, or outside the city"})
    time_left = QueryInteger(validate=validate.Range(0, 10**9),
                             metadata={"description": "only cases due within this many seconds (overdue included)"})
    page = QueryInteger(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = QueryInteger(load_default=50, validate=validate.Range(1, 500))


class AmountIn(Schema):
    class Meta:
        unknown = RAISE

    amount = JsonFloat(required=True, validate=validate.Range(min=0, min_inclusive=False))
    unit = fields.String(load_default="hours", validate=validate.OneOf(list(UNIT_SECONDS)))


class ActionIn(Schema):
    """One action and its arguments; which arguments an action needs is in the table of
    ``services/escalation/domain/actions.py`` (a missing or extra one is a 422)."""

    class Meta:
        unknown = RAISE

    action = fields.String(required=True, validate=validate.OneOf(HTTP_ACTIONS))
    note = Text(LIMITS["description"], multiline=True, metadata={
        "description": "acknowledge, resolve, approve_extension, resume (resolve: what was done)"})
    reason = Text(LIMITS["reason"], multiline=True, metadata={
        "description": "escalate, return, transfer, request_extension, refuse_extension, suspend, reopen"})
    level = JsonInteger(validate=validate.Range(1, 3), metadata={"description": "return: the lower level"})
    to = Text(LIMITS["area_id"], min_length=1, metadata={"description": "transfer: a grid or station id"})
    amount = fields.Nested(AmountIn, metadata={"description": "request_extension: how much more time"})


class OwnerOut(Schema):
    level = fields.Integer()
    area_id = fields.String()
    area_name = fields.String()


class LocationOut(Schema):
    lon = fields.Float(allow_none=True)
    lat = fields.Float(allow_none=True)


class ReportOut(Schema):
    description = fields.String(allow_none=True)
    location = fields.Nested(LocationOut)
    reported_at = fields.String(allow_none=True)
    reporter = fields.String(allow_none=True)


class StepOut(Schema):
    at = fields.String(metadata={"description": "ISO 8601 UTC, when it happened"})
    type = fields.String(validate=validate.OneOf([t.value for t in StepType]))
    level = fields.Integer(metadata={"description": "the level after the step"})
    actor = fields.String()
    note = fields.String()
    scheduled_at = fields.String(allow_none=True, metadata={"description": "timer steps: the deadline that fired"})


class CaseOut(Schema):
    id = fields.String()
    number = fields.String()
    category = fields.String()
    severity = fields.String()
    status = fields.String()
    level = fields.Integer()
    owner = fields.Nested(OwnerOut)
    areas = fields.Dict()
    deadline = fields.String(allow_none=True, metadata={"description": "ISO 8601 UTC"})
    time_left = fields.Float(allow_none=True, metadata={"description": "seconds to the deadline (negative: late)"})
    overdue = fields.Boolean()
    verification_overdue = fields.Boolean()
    triage = fields.Boolean()
    triage_reason = fields.String(allow_none=True, metadata={"description": "no_grid or outside_city"})
    candidates = fields.List(fields.Dict(), metadata={"description": "triage: nearby grids (id, distance_m)"})
    reworks = fields.Integer()
    extensions = fields.List(fields.Dict())
    pending_extension = fields.Dict(allow_none=True)
    opened_at = fields.String()
    updated_at = fields.String()
    report = fields.Nested(ReportOut)
    timeline = fields.List(fields.Nested(StepOut))
    actions = fields.List(fields.String(), metadata={"description": "the actions the caller may take now"})


class CaseListOut(Schema):
    items = fields.List(fields.Nested(CaseOut))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def case_view(case, report, updated_at, now, *, candidates=(), steps=None, available=None) -> dict:
    owner = case.owner
    view = {
        "id": case.id, "number": case.number, "category": case.category, "severity": case.severity,
        "status": case.status, "level": int(case.level),
        "owner": {"level": int(owner.level), "area_id": owner.area_id, "area_name": owner.area_name},
        "areas": case.areas, "deadline": isoformat(case.deadline) if case.deadline else None,
        "time_left": (case.deadline - now).total_seconds() if case.deadline else None,
        "overdue": case.overdue or (case.deadline is not None and case.due_at is not None and case.is_due(now)),
        "verification_overdue": case.verification_overdue, "triage": case.triage,
        "triage_reason": _triage_reason(case), "candidates": list(candidates), "reworks": case.reworks,
        "extensions": [x.to_dict() for x in case.extensions],
        "pending_extension": case.pending_extension.to_dict() if case.pending_extension else None,
        "opened_at": isoformat(case.opened_at), "updated_at": isoformat(updated_at),
        "report": {"description": report.description, "location": {"lon": report.lon, "lat": report.lat},
                   "reported_at": isoformat(report.reported_at) if report.reported_at else None,
                   "reporter": report.reporter},
    }
    if steps is not None:
        view["timeline"] = [{"at": isoformat(s.at), "type": str(s.type), "level": int(s.level), "actor": s.actor,
                             "note": s.note, "scheduled_at": isoformat(s.scheduled_at) if s.scheduled_at else None}
                            for s in steps]
    if available is not None:
        view["actions"] = [a for a in available if a in HTTP_ACTIONS]
    return view


def _triage_reason(case) -> str | None:
    """A triage case outside every sub-center lies outside the city (dispatch sends it to headquarters);
    one inside the city lies in a gap between grids."""
    if not case.triage:
        return None
    return "outside_city" if not case.areas.get("subcenter") and not case.areas.get("station") else "no_grid"


@blp.route("/cases")
class Cases(MethodView):
    @roles(*ROLES)
    @blp.arguments(CaseListArgs, location="query")
    @blp.response(200, CaseListOut)
    def get(self, args):
        """The cases the caller may see, the least time left first (no deadline last); filters: status
        (one or several, comma-separated), level, area, category, overdue, triage, time_left (seconds).

        ``GET /escalation/v1/cases?overdue=true&level=2`` → ``{"items": [{"id", "number", "status",
        "level", "owner", "deadline", "time_left", …}], "total": 3, "page": 1, "page_size": 50}``
        """
        caller = identity()
        service = current_service()
        now = service.clock.now()
        filters = {k: args[k] for k in ("status", "level", "category", "area", "overdue", "triage") if k in args}
        if "time_left" in args:
            filters["due_within"] = now + timedelta(seconds=args["time_left"])
        with service.uow() as uow:
            found, total = uow.store.page(caller, now=now, page=args["page"], size=args["page_size"], **filters)
        return {"items": [case_view(case, report, updated, now) for case, _, report, updated in found],
                "total": total, "page": args["page"], "page_size": args["page_size"]}


class EventsArgs(Schema):
    class Meta:
        unknown = RAISE

    last_event_id = QueryInteger(validate=validate.Range(0, 2**62), metadata={
        "description": "resume after this event id (as the Last-Event-ID header; the header wins)"})


@blp.route("/cases/events")
class CaseEvents(MethodView):
    @roles(*ROLES)
    @blp.arguments(EventsArgs, location="query")
    @blp.doc(responses={"200": {"description": "a text/event-stream of case events",
                                "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    @blp.alt_response(406, description="the request does not accept text/event-stream")
    def get(self, args):
        """The live feed of the cases the caller may see (Server-Sent Events): one ``case`` event per
        timeline step (a new case, an acknowledgement, an escalation by the scheduler, …), carrying the
        case as the list shows it and the step. Send ``Accept: text/event-stream``.

        Each event's ``id`` is the timeline row's id: reconnect with ``Last-Event-ID`` (or
        ``?last_event_id=``) to receive what was missed. A new connection without one starts with a
        ``hello`` event whose id is the newest row: load the list (``GET /cases``) after it and apply the
        events that follow. When more was missed than a feed replays (``live.REPLAY_LIMIT`` rows), a
        ``reset`` event says to load the list again. A comment line keeps the connection open every
        ``live.KEEPALIVE`` seconds; the server ends the stream after ``live.STREAM_SECONDS`` (a client
        reconnects at once with its last id, so a worker is never held for long).

        ``GET /escalation/v1/cases/events`` with ``Last-Event-ID: 41`` →
        ``id: 42`` / ``event: case`` / ``data: {"case": {"id", "number", "status", "level", "deadline",
        "time_left", …}, "step": {"id": 42, "type": "opened", "level": 1, "at", "actor", "note"}}``
        """
        caller = identity()
        if "text/event-stream" not in request.headers.get("Accept", ""):
            abort(406, message="this is a text/event-stream: send Accept: text/event-stream")
        header = request.headers.get("Last-Event-ID", "").strip()
        after = int(header) if header.isascii() and header.isdigit() and len(header) < 19 else args.get("last_event_id")
        service = current_service()
        return Response(live.stream(service, caller, after, lambda step, case, report, updated, now: case_view(
            case, report, updated, now)), mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@blp.route("/cases/<case_id>")
class CaseDetail(MethodView):
    @roles(*ROLES)
    @blp.response(200, CaseOut)
    def get(self, case_id):
        """One case with its report, owner, deadline, timeline and the actions the caller may take; its
        ``ETag`` goes back in ``If-Match`` with an action. 404 if unknown or outside the caller's area.

        ``GET /escalation/v1/cases/6f1c…`` → ``{"id": "6f1c…", "status": "open", "level": 1,
        "owner": {"level": 1, "area_id": "SC01-ST03-G0042", "area_name": "网格 0042"},
        "deadline": "2026-01-05T13:00:00.000Z", "report": {"description": "lamp out", …},
        "timeline": [{"at": …, "type": "opened", "level": 1, "actor": "system", "note": ""}], …}``
        """
        caller = identity()
        service = current_service()
        with service.uow() as uow:
            case = uow.store.get(case_id, caller)
            if case is None:
                abort(404, message="no such case")
            view = _detail(uow, case, caller, service.clock.now())
            tag = handlers.etag(uow.store.revision(case.id))
        return view, 200, {"ETag": tag}


@blp.route("/cases/<case_id>/actions")
class CaseActions(MethodView):
    @roles(*ROLES)
    @blp.arguments(ActionIn)
    @blp.response(200, CaseOut)
    @blp.alt_response(403, description="the caller's role or level may not take this action")
    @blp.alt_response(404, description="no such case in the caller's area")
    @blp.alt_response(409, description="the case's state does not allow the action now")
    @blp.alt_response(412, description="the case changed since the caller read it (If-Match is stale)")
    @blp.alt_response(428, description="If-Match is required")
    def post(self, body, case_id):
        """Take an action of the closed loop: acknowledge, resolve, escalate (上报), return (回退/下派),
        transfer, request_extension / approve_extension / refuse_extension (延期), suspend / resume (挂账),
        reopen. Send the case's ``ETag`` as ``If-Match``.

        ``POST /escalation/v1/cases/6f1c…/actions`` with ``If-Match: "3"`` and
        ``{"action": "resolve", "note": "lamp replaced"}`` → ``200`` with the case (now ``verifying``) and
        its new ``ETag``.
        """
        caller = identity()
        if_match = request.headers.get("If-Match")
        if not if_match:
            abort(428, message="send the case's ETag in If-Match (GET the case first)")
        service = current_service()
        arguments = {k: v for k, v in body.items() if k != "action"}
        try:
            case, revision = service.run(handlers.take_action, handlers.TakeAction(
                case_id, body["action"], arguments, caller, if_match.strip()))
        except LookupError:
            abort(404, message="no such case")
        except (handlers.StaleETag, StaleCase):
            abort(412, message="the case changed since you read it: reload it and decide again")
        except Refused as refusal:
            abort(refusal.status, message=str(refusal))
        with service.uow() as uow:
            case = uow.store.get(case_id)
            view = _detail(uow, case, caller, service.clock.now())
        return view, 200, {"ETag": handlers.etag(revision)}


def _detail(uow, case, caller, now) -> dict:
    report, candidates, updated_at = uow.store.detail(case.id)
    return case_view(case, report, updated_at, now, candidates=candidates, steps=uow.store.steps(case.id),
                     available=actions.available(case, caller, now))
