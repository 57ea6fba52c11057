"""Escalation's HTTP interface for command-center staff: the cases of their area, each with its report,
owner, deadline and timeline, and the actions of the closed loop (with ``ETag`` / ``If-Match``)."""
from __future__ import annotations

import re
from datetime import timedelta

import structlog
from flask import Response, request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from services.escalation import exports, handlers, live, replay_limits
from services.escalation.domain import actions, departments, loop, statistics
from services.escalation.domain.cases import AWAITING_VERIFICATION
from services.escalation.domain.deadlines import UNITS, is_late
from services.escalation.domain.permissions import verifying_level
from services.escalation.domain.timeline import StepType
from shared.clock import isoformat
from shared.departments import ROLES as DEPARTMENT_ROLES
from shared.exports import export_csv
from shared.fields import LIMITS, Day, JsonFloat, JsonInteger, QueryBoolean, QueryFloat, QueryInteger, Text
from shared.pages import language
from shared.policy import PolicyError, parse_policy
from shared.vocabulary import Level, Status
from shared.web import Blueprint, access, caller_language, current_service, deny, identity, lookup, printable
from shared.words import Invalid, Problem, Said, note_text

log = structlog.get_logger("gridcase.escalation")
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
            raise ValidationError(Said("schema.one_or_several_of", choices=", ".join(self.CHOICES)))
        return names


class CaseListArgs(Schema):
    class Meta:
        unknown = RAISE

    status = Statuses(metadata={"description": "one status, or several separated by commas (open,rework)"})
    level = QueryInteger(validate=validate.Range(1, 4))
    area = Text(LIMITS["area_id"], min_length=1)
    category = Text(LIMITS["category"], min_length=1)
    overdue = QueryBoolean(metadata={"description": "past the deadline (or flagged overdue at level 4)"})
    triage = QueryBoolean(metadata={"description": "a point in no grid, or outside the city"})
    time_left = QueryInteger(validate=validate.Range(0, 10**9),
                             metadata={"description": "only cases due within this many seconds (overdue included)"})
    warned = QueryFloat(validate=validate.Range(-1, 1), metadata={
        "description": "only cases warned at their current level of at least this share of the limit "
                       "(0: any warning; -1: not warned yet)"})
    sort = fields.String(load_default="deadline", validate=validate.OneOf(["deadline", "warning", "next_warning"]),
                         metadata={"description": "deadline: least time left first; warning: highest warning "
                                                  "first; next_warning: the soonest warning to come first"})
    q = Text(200, min_length=1, metadata={
        "description": "words each found (any case) in the case number, the description, the reporter or the "
                       "owning areas' ids and names; combine with status=closed to find closed cases"})
    assignee = Text(LIMITS["user"], min_length=1, metadata={
        "description": "me: the caller's cases (承办人); a user: theirs; none: the cases the caller's unit holds "
                       "that nobody handles (a department: its parts)"})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]), metadata={
        "description": "csv: the page as CSV for a spreadsheet, one header row in the caller's language "
                       "(Accept-Language): number, category, status, level, owner, assignee, deadline and opened "
                       "in the city's time zone, time left in hours, …"})
    page = QueryInteger(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = QueryInteger(load_default=50, validate=validate.Range(1, 500))


class AmountIn(Schema):
    class Meta:
        unknown = RAISE

    amount = JsonFloat(required=True, validate=validate.Range(min=0, min_inclusive=False))
    unit = fields.String(load_default="hours", validate=validate.OneOf(list(UNITS)))


class ActionIn(Schema):
    """One action and its arguments; which arguments an action needs is in the table of
    ``services/escalation/domain/actions.py`` (a missing or extra one is a 422)."""

    class Meta:
        unknown = RAISE

    action = fields.String(required=True, validate=validate.OneOf(HTTP_ACTIONS))
    note = Text(LIMITS["description"], multiline=True, metadata={
        "description": "acknowledge, resolve, approve_extension, approve_suspension, resume (resolve: what was done)"})
    reason = Text(LIMITS["reason"], multiline=True, metadata={
        "description": "escalate, return, transfer, request_extension, refuse_extension, suspend, refuse_suspension, "
                       "reopen"})
    level = JsonInteger(validate=validate.Range(1, 3), metadata={"description": "return: the lower level"})
    to = Text(LIMITS["area_id"], min_length=1, metadata={"description": "transfer: a grid or station id"})
    amount = fields.Nested(AmountIn, metadata={"description": "request_extension: how much more time"})
    department = Text(LIMITS["area_id"], min_length=1, metadata={
        "description": "assign_department: the department's id (GET /dispatch/v1/departments)"})
    role = fields.String(validate=validate.OneOf(list(DEPARTMENT_ROLES)), metadata={
        "description": "assign_department: lead (主办) or co (协办)"})
    outcome = fields.String(validate=validate.OneOf(list(departments.OUTCOMES)), metadata={
        "description": "feedback (反馈): done (with note and after-photos) or declined (退单, with reason)"})
    photos = fields.List(Text(64, min_length=1), validate=validate.Length(max=20), metadata={
        "description": "resolve, feedback: the ids of after-photos uploaded to intake (kind after)"})
    into = Text(LIMITS["resource_id"], min_length=1, metadata={
        "description": "merge: the id of the case this report duplicates (GET …/cases/by-number/{number} finds it)"})
    severity = Text(LIMITS["severity"], min_length=1, metadata={
        "description": "set_severity: one of the policy's severities (normal, urgent)"})
    assignee = Text(LIMITS["user"], min_length=1, allow_none=True, metadata={
        "description": "assign (承办人): a user of the unit holding the case, me, or null (nobody)"})
    respond_within = Text(32, min_length=1, metadata={
        "description": 'urge (督办): the time to answer, e.g. "2 working_hours" (default: the rule\'s urge_response)'})


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
    deadline_basis = fields.String(allow_none=True, metadata={
        "description": "what a working-time deadline rests on: official (the city's calendar files), "
                       "provisional (a year by statutory rules only), calendar_gap (a year no source covers: "
                       "its weekdays were taken as working days); null for elapsed-time limits"})
    provisional = fields.Boolean(metadata={"description": "deadline_basis is provisional"})
    calendar_gap = fields.Boolean(metadata={"description": "deadline_basis is calendar_gap"})
    overdue = fields.Boolean()
    warned = fields.Float(allow_none=True, metadata={"description": "the highest warning threshold reached at "
                                                                    "the current level (0.5, 0.8) or null"})
    next_warning = fields.String(allow_none=True, metadata={"description": "ISO 8601 UTC: the next warning"})
    verification_overdue = fields.Boolean()
    triage = fields.Boolean()
    triage_reason = fields.String(allow_none=True, metadata={"description": "no_grid or outside_city"})
    candidates = fields.List(fields.Dict(), metadata={"description": "triage: nearby grids (id, distance_m)"})
    reworks = fields.Integer()
    extensions = fields.List(fields.Dict())
    pending_extension = fields.Dict(allow_none=True)
    limit = fields.Dict(metadata={
        "description": "GET /cases/{id} and actions only: the limit of the case's current level, {amount, unit} "
                       "(unit minutes|hours|working_hours|working_days), from the policy frozen onto the case "
                       "when it opened; the unit an extension is best asked in"})
    pending_suspension = fields.Dict(allow_none=True, metadata={
        "description": "挂账 asked of the level above: {reason, requested_by, requested_at}, or null"})
    departments = fields.List(fields.Dict(), metadata={
        "description": "functional departments on the case: [{id, name, role (lead|co), status "
                       "(assigned|acknowledged|done|declined), deadline, overdue, …}]"})
    department_overdue = fields.Boolean(metadata={"description": "an active department is past its deadline"})
    assignee = fields.String(allow_none=True, metadata={
        "description": "the named handler (承办人) in the unit holding the case now, or null"})
    merged_into = fields.Dict(allow_none=True, metadata={
        "description": "merged: the case it duplicates ({id}; its status is the one that counts)"})
    resolved_by = fields.String(allow_none=True, metadata={"description": "who resolved it last"})
    verifier = fields.Dict(allow_none=True, metadata={
        "description": "awaiting verification: who checks it on site ({level, area_id}): the grid worker of the "
                       "grid, or the station when the grid worker fixed it on the spot"})
    can_verify = fields.Boolean(metadata={
        "description": "the caller checks this case on site (through POST /intake/v1/cases/{id}/verification); "
                       "in the list too, so a phone needs no request per case to know which are its own"})
    resolution_note = fields.String(allow_none=True, metadata={
        "description": "GET /cases (the list) only: a case awaiting verification, what was done (the note of its "
                       "latest resolved step, the system's words in the caller's language); else null"})
    assignable = fields.List(fields.String(), metadata={
        "description": "where the caller may assign the case: the people known in the unit holding it"})
    urges = fields.List(fields.Dict(), metadata={
        "description": "督办 on record: [{at, by, note, urged, due, overdue, answered_at, answer}]"})
    urge_open = fields.Boolean(metadata={"description": "an urge waits for the holder's answer"})
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
        "areas": case.owners.to_json(), "deadline": isoformat(case.deadline) if case.deadline else None,
        "time_left": (case.deadline - now).total_seconds() if case.deadline else None,
        "deadline_basis": case.deadline_basis, "provisional": case.deadline_basis == "provisional",
        "calendar_gap": case.deadline_basis == "calendar_gap",
        "overdue": case.overdue or case.is_past_deadline(now),
        "warned": case.warned,
        "next_warning": isoformat(case.warnings[0][1]) if case.warnings and case.due_at is not None else None,
        "verification_overdue": case.verification_overdue, "triage": case.triage,
        "triage_reason": _triage_reason(case), "candidates": list(candidates), "reworks": case.reworks,
        "extensions": [x.to_dict() for x in case.extensions],
        "departments": [department_view(a, now) for a in case.assignments],
        "department_overdue": any(a.active and (a.overdue or is_late(a.deadline, now)) for a in case.assignments),
        "urges": [{"at": isoformat(u.at), "by": u.by, "note": u.note, "urged": u.urged, "due": isoformat(u.due),
                   "overdue": u.overdue or (u.open and is_late(u.due, now)),
                   "answered_at": isoformat(u.answered_at) if u.answered_at else None, "answer": u.answer}
                  for u in case.urges],
        "urge_open": any(u.open for u in case.urges),
        "pending_extension": case.pending_extension.to_dict() if case.pending_extension else None,
        "pending_suspension": case.pending_suspension.to_dict() if case.pending_suspension else None,
        "assignee": case.handler, "merged_into": {"id": case.merged_into} if case.merged_into else None,
        "resolved_by": case.resolved_by, "verifier": _verifier(case),
        "opened_at": isoformat(case.opened_at), "updated_at": isoformat(updated_at),
        "report": {"description": report.description, "location": {"lon": report.lon, "lat": report.lat},
                   "reported_at": isoformat(report.reported_at) if report.reported_at else None,
                   "reporter": report.reporter},
    }
    if steps is not None:
        lang = caller_language()  # the system's notes are codes (shared.words.note), a person's as written
        view["timeline"] = [{"at": isoformat(s.at), "type": str(s.type), "level": int(s.level), "actor": s.actor,
                             "note": note_text(s.note, lang),
                             "scheduled_at": isoformat(s.scheduled_at) if s.scheduled_at else None}
                            for s in steps]
    if available is not None:
        view["actions"] = [a for a in available if a in HTTP_ACTIONS]
        view["can_verify"] = "verify" in available
    return view


def _verifier(case) -> dict | None:
    """Who checks a case awaiting verification on site (``permissions.verifying_level``)."""
    if case.status not in AWAITING_VERIFICATION:
        return None
    level = verifying_level(case)
    ref = case.owners.at(level)
    return {"level": int(level), "area_id": ref.id if ref else None}


def department_view(assignment, now) -> dict:
    """One department on a case: ``{"id", "name", "role", "status", "deadline", "overdue", …}``; times
    ISO 8601 UTC; ``overdue`` while its feedback is late (flagged once by the scheduler)."""
    a = assignment
    iso = lambda t: isoformat(t) if t else None  # noqa: E731
    return {"id": a.department, "name": a.name, "role": a.role, "status": a.status, "deadline": iso(a.deadline),
            "overdue": a.active and (a.overdue or is_late(a.deadline, now)), "assigned_at": iso(a.assigned_at),
            "assigned_by": a.assigned_by, "acknowledged_at": iso(a.acknowledged_at),
            "feedback_at": iso(a.feedback_at), "note": a.note, "reason": a.reason, "photos": list(a.photos)}


def _triage_reason(case) -> str | None:
    """A triage case outside every sub-center lies outside the city (dispatch sends it to headquarters);
    one inside the city lies in a gap between grids."""
    if not case.triage:
        return None
    return "outside_city" if case.owners.owned_level(Level.STATION) == Level.HQ else "no_grid"


@blp.route("/cases")
class Cases(MethodView):
    @access("case.list")
    @blp.arguments(CaseListArgs, location="query")
    @blp.response(200, CaseListOut)
    @blp.alt_response(200, schema={"type": "string"}, content_type="text/csv",
                      description="format=csv: the page as CSV")
    def get(self, args):
        """The cases the caller may see, the least time left first (no deadline last); filters: status
        (one or several, comma-separated), level, area, category, overdue, triage, time_left (seconds),
        warned (a warning threshold reached); ``sort`` by deadline (default), warning or next_warning.
        Each item says whether the caller verifies it on site (``can_verify``, the rule of the case's own
        page) and, awaiting verification, what was done (``resolution_note``: one query for the page), so a
        verifier's list needs no request per case.

        ``GET /escalation/v1/cases?overdue=true&level=2`` → ``{"items": [{"id", "number", "status",
        "level", "owner", "deadline", "time_left", …}], "total": 3, "page": 1, "page_size": 50}``
        """
        caller = identity()
        service = current_service()
        now = service.clock.now()
        filters = {k: args[k] for k in ("status", "level", "category", "area", "overdue", "triage", "warned", "sort",
                                        "q") if k in args}
        if "time_left" in args:
            filters["due_within"] = now + timedelta(seconds=args["time_left"])
        if "assignee" in args:
            filters["assignee"] = caller.user if args["assignee"] == "me" else args["assignee"]
        service.run(handlers.remember_person, caller)
        with service.uow() as uow:
            found, total = uow.store.page(caller, now=now, page=args["page"], size=args["page_size"], **filters)
            resolutions = uow.store.last_notes([case.id for case, *_ in found if case.status in AWAITING_VERIFICATION],
                                               StepType.RESOLVED)
        lang = caller_language()
        items = []
        for case, _, report, updated in found:
            view = case_view(case, report, updated, now)
            view["can_verify"] = loop.may_verify(caller, case)
            note = resolutions.get(case.id)
            view["resolution_note"] = note_text(note, lang) if note is not None else None
            items.append(view)
        if args["format"] == "csv":
            return _cases_csv(items)
        return {"items": items, "total": total, "page": args["page"], "page_size": args["page_size"]}


def _cases_csv(items: list[dict]) -> Response:
    """One page of the case list as CSV for people (``exports.case_list_table``: column names in the caller's
    language, the category's name beside its code, times in the city's time zone, the time left in hours;
    ``shared.exports``: text cells inert, UTF-8 with a byte-order mark, so that Excel reads Chinese)."""
    service = current_service()
    lang = language(request.accept_languages)
    categories = service.policy.categories
    columns, header, rows = exports.case_list_table(
        items, lang, zone=service.settings.time_zone,
        category_names=lambda code: getattr(categories[code], lang) if code in categories else None)
    return Response(export_csv(columns, rows, header), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="cases.csv"', "Content-Language": lang})


class EventsArgs(Schema):
    class Meta:
        unknown = RAISE

    last_event_id = QueryInteger(validate=validate.Range(0, 2**62), metadata={
        "description": "resume after this event id (as the Last-Event-ID header; the header wins)"})


#: An entity tag as escalation gives them (a case's revision, ``"3"``), weak or strong (RFC 9110 §8.8.3).
ETAG = re.compile(r'(W/)?"[0-9]{1,18}"')


@blp.route("/cases/events")
class CaseEvents(MethodView):
    @access("case.list")
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
            abort(406, message=Said("stream.accept"))
        header = request.headers.get("Last-Event-ID", "").strip()
        if header and not (header.isascii() and header.isdigit() and len(header) < 19):
            abort(422, errors={"Last-Event-ID": [Said("stream.not_an_event_id")]})
        after = int(header) if header else args.get("last_event_id")
        service = current_service()
        return Response(live.stream(service, caller, after, _feed_view, lang=caller_language()),
                        mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Vary": "Accept-Language"})


def _feed_view(step, case, report, updated, now) -> dict:
    """The case as the live feed sends it: as the list shows it."""
    return case_view(case, report, updated, now)


@blp.route("/cases/<case_id>")
class CaseDetail(MethodView):
    @access("case.read")
    @blp.response(200, CaseOut)
    def get(self, case_id):
        """One case with its report, owner, deadline, timeline and the actions the caller may take; its
        ``ETag`` goes back in ``If-Match`` with an action. 404 if unknown or outside the caller's area.

        ``GET /escalation/v1/cases/6f1c…`` → ``{"id": "6f1c…", "status": "open", "level": 1,
        "owner": {"level": 1, "area_id": "SC01-ST03-G0042", "area_name": "网格 0042"},
        "deadline": "2026-01-05T13:00:00.000Z", "report": {"description": "lamp out", …},
        "timeline": [{"at": …, "type": "opened", "level": 1, "actor": "system", "note": ""}], …}``
        """
        return _read(lambda store, caller: store.get(case_id, caller))


@blp.route("/cases/by-number/<number>")
class CaseByNumber(MethodView):
    @access("case.read")
    @blp.response(200, CaseOut)
    def get(self, number):
        """The case people quote by its number (``20260105-000042``), as ``GET /cases/{id}`` answers it (with
        its ``ETag``), closed or not; 404 if there is none or it lies outside the caller's area.

        ``GET /escalation/v1/cases/by-number/20260105-000042`` → ``{"id": "6f1c…", "number":
        "20260105-000042", "status": "closed", …, "timeline": […]}``
        """
        return _read(lambda store, caller: store.by_number(number, caller))


def _read(find):
    """A case found by ``find(store, caller)`` with its detail and ETag, or the 404 of a case not seen."""
    caller = identity()
    service = current_service()
    service.run(handlers.remember_person, caller)
    with service.uow() as uow:
        case = find(uow.store, caller)
        if case is None:
            deny(caller, "case.read", code="case.not_found")
        view = _detail(uow, case, caller, service.clock.now())
        tag = handlers.etag(uow.store.revision(case.id))
    return view, 200, {"ETag": tag}


@blp.route("/cases/<case_id>/actions")
class CaseActions(MethodView):
    @access("case.act")
    @blp.arguments(ActionIn)
    @blp.response(200, CaseOut)
    @blp.alt_response(403, description="the caller's role or level may not take this action")
    @blp.alt_response(404, description="no such case in the caller's area")
    @blp.alt_response(409, description="the case's state does not allow the action now")
    @blp.alt_response(412, description="the case changed since the caller read it (If-Match is stale), or "
                                        "If-Match holds only weak ETags (W/\"3\"), which never match")
    @blp.alt_response(428, description="If-Match is required")
    @lookup("case.act", "case.not_found")
    def post(self, body, case_id):
        """Take an action of the closed loop: acknowledge, resolve, escalate (上报), return (回退/下派),
        transfer, request_extension / approve_extension / refuse_extension (延期), suspend (asks the level
        above) / approve_suspension / refuse_suspension / resume (挂账),
        reopen; urge (督办: ``note``, ``respond_within``) and respond_urge (``note``); assign_department (派遣:
        ``department``, ``role``); a department's acknowledge (签收) and
        feedback (反馈: ``outcome`` done with ``note`` and ``photos``, or declined with ``reason``). Send
        the case's ``ETag`` as ``If-Match``.

        ``POST /escalation/v1/cases/6f1c…/actions`` with ``If-Match: "3"`` and
        ``{"action": "resolve", "note": "lamp replaced"}`` → ``200`` with the case (now ``verifying``) and
        its new ``ETag``.
        """
        caller = identity()
        if_match = request.headers.get("If-Match")
        if not if_match:
            raise Problem("case.if_match_required", http_status=428)
        sent = request.if_match
        if not sent.star_tag and not sent.as_set() and sent.as_set(include_weak=True):
            # RFC 9110 §13.1.1: If-Match uses the strong comparison, so a weak tag never matches. A proxy
            # that compresses answers turns "3" into W/"3"; saying "the case changed" would be false, forever.
            raise Problem("case.weak_etag", http_status=412, sent=printable(if_match.strip(), 60))
        if not sent.star_tag and not all(ETAG.fullmatch(tag.strip()) for tag in if_match.split(",")):
            # a value that is no ETag of a case is not "the case changed since you read it" (412): say what it is
            abort(422, errors={"If-Match": [Said("case.not_an_etag", sent=printable(if_match.strip(), 60))]})
        service = current_service()
        arguments = {k: v for k, v in body.items() if k != "action"}
        case, revision = service.run(handlers.take_action, handlers.TakeAction(
            case_id, body["action"], arguments, caller, if_match.strip()))
        with service.uow() as uow:
            case = uow.store.get(case_id)
            view = _detail(uow, case, caller, service.clock.now())
        return view, 200, {"ETag": handlers.etag(revision)}


def _detail(uow, case, caller, now) -> dict:
    report, candidates, updated_at = uow.store.detail(case.id)
    available = actions.available(case, caller, now)
    view = case_view(case, report, updated_at, now, candidates=candidates, steps=uow.store.steps(case.id),
                     available=available)
    unit = uow.store.unit_of(caller) if "assign" in available else None
    view["assignable"] = uow.store.people_of(unit) if unit else []
    view["limit"] = case.policy.limit(case.level).to_dict()  # the frozen policy, not today's: the case's own rule
    return view


# -- statistics ---------------------------------------------------------------------------------------

class ClosureStatsArgs(Schema):
    class Meta:
        unknown = RAISE

    group_by = fields.String(required=True, validate=validate.OneOf([*statistics.GROUP_FIELDS, "department"]))
    period = fields.String(load_default="month", validate=validate.OneOf(list(statistics.PERIODS)))
    by = fields.String(load_default="opened", validate=validate.OneOf(list(statistics.BYS)), metadata={
        "description": "the cohort: cases opened in each period (default), or closed in it (the monthly "
                       "review, 考核, by closing month); group_by=department: assignments made (opened) or "
                       "fed back on, done or declined (closed)"})
    from_ = Day(required=True, data_key="from", metadata={
        "description": "first local date (the city's time zone), included"})
    to = Day(required=True, metadata={"description": "last local date, excluded (half-open)"})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))
    rank_by = fields.String(validate=validate.OneOf(sorted({*statistics.RANKABLE, *statistics.DEPARTMENT_RANKABLE})),
                            metadata={"description": "rank the groups of each period by this measure (adds `rank`); "
                                                     "group_by=department ranks by its own measures"})
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]),
                          metadata={"description": "the ranking's order: desc puts the highest value first"})
    lang = fields.String(validate=validate.OneOf(["zh", "en"]), metadata={
        "description": "format=csv: the language of the column and unit names (default: Accept-Language, "
                       "Chinese unless English is preferred)"})


class QuantilesOut(Schema):
    median = fields.Float(allow_none=True, metadata={"description": "seconds"})
    p90 = fields.Float(allow_none=True, metadata={"description": "seconds"})


class StatsRowOut(Schema):
    area_id = fields.String(allow_none=True)
    area_name = fields.String(allow_none=True, metadata={"description": "the area's name (grid, station, subcenter)"})
    category = fields.String()
    severity = fields.String()
    reporter = fields.String(allow_none=True)
    period_start = fields.String(metadata={"description": "local date (YYYY-MM-DD) the period starts"})
    opened = fields.Integer()
    closed = fields.Integer()
    closure_rate = fields.Float(allow_none=True)
    on_time_rate = fields.Float(allow_none=True)
    on_time_rate_with_extensions = fields.Float(allow_none=True)
    on_time_rate_final = fields.Float(allow_none=True, metadata={
        "description": "closed with the last resolve before the final deadline (the one in force then)"})
    rework_rate = fields.Float(allow_none=True)
    extension_rate = fields.Float(allow_none=True)
    escalation_rate = fields.Float(allow_none=True)
    overdue = fields.Integer()
    time_to_acknowledge = fields.Nested(QuantilesOut)
    time_to_resolve = fields.Nested(QuantilesOut)
    time_to_close = fields.Nested(QuantilesOut)
    urged = fields.Integer(metadata={"description": "cases urged (督办) at least once"})
    urges_late = fields.Integer(metadata={"description": "urges not answered in time"})
    time_to_respond = fields.Nested(QuantilesOut, metadata={"description": "first urge to its answer, seconds"})
    time_at_level = fields.Dict(keys=fields.String(), values=fields.Nested(QuantilesOut), metadata={
        "description": "level → working seconds there (median, p90)"})
    calendar_at_level = fields.Dict(keys=fields.String(), values=fields.Nested(QuantilesOut), metadata={
        "description": "level → calendar seconds there (median, p90)"})
    # group_by=department (statistics.department_rows)
    department = fields.String()
    assigned = fields.Integer()
    acknowledged = fields.Integer()
    done = fields.Integer()
    declined = fields.Integer()
    on_time = fields.Integer()
    decline_rate = fields.Float(allow_none=True)
    time_to_accept = fields.Nested(QuantilesOut)
    time_to_feedback = fields.Nested(QuantilesOut)
    rank = fields.Integer(allow_none=True)


class ClosureStatsOut(Schema):
    group_by = fields.String()
    period = fields.String()
    by = fields.String(metadata={"description": "opened or closed: the cohort the rows count"})
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    time_zone = fields.String()
    rows = fields.List(fields.Nested(StatsRowOut))


@blp.route("/stats/closure-times")
class ClosureTimes(MethodView):
    @access("stats.read")
    @blp.arguments(ClosureStatsArgs, location="query")
    @blp.response(200, ClosureStatsOut)
    @blp.alt_response(200, schema={"type": "string"}, content_type="text/csv",
                      description="format=csv: the rows flattened for a spreadsheet")
    def get(self, args):
        """Closure-time statistics (结案率, 按期结案率, 返工率 …) of the cases opened (``by=opened``, the
        default) or closed (``by=closed``: closed now, for the monthly review) on the local dates
        ``[from, to)`` in the city's time zone, grouped by grid, station, sub-center, category, severity
        or reporter and by day, week (Monday) or month of that date; the caller's area scope applies (a
        station sees its own grids). Rates are fractions 0–1, null where the denominator is 0; durations are seconds.
        The README's "Closure-time statistics" defines each measure. ``format=csv``: the same columns
        flattened for a spreadsheet (``services/escalation/exports.py``: UTF-8 with a byte-order mark, column
        names in ``lang``, unit names beside ids, durations in hours). ``rank_by``: rank each period's groups.

        ``GET /escalation/v1/stats/closure-times?group_by=station&period=month&from=2026-01-01&to=2027-01-01``
        → ``{"group_by": "station", "period": "month", "by": "opened", "from": …, "to": …, "time_zone": "Asia/Shanghai",
        "rows": [{"area_id": "S1", "period_start": "2026-01-01", "opened": 40, "closed": 38,
        "closure_rate": 0.95, …, "time_to_close": {"median": 86400.0, "p90": 259200.0}, …}]}``
        """
        if args["to"] <= args["from_"]:
            abort(422, errors={"to": [Said("stats.to_after_from")]})
        if (args["to"] - args["from_"]).days > 3 * 366:
            abort(422, errors={"to": [Said("stats.at_most_years", years=3)]})
        rankable = statistics.DEPARTMENT_RANKABLE if args["group_by"] == "department" else statistics.RANKABLE
        if args.get("rank_by") and args["rank_by"] not in rankable:
            abort(422, errors={"rank_by": [Said("stats.rank_by", group_by=args["group_by"],
                                                choices=", ".join(rankable))]})
        service = current_service()
        answer = service.run(handlers.closure_stats, handlers.ClosureStats(
            identity(), args["group_by"], args["period"], args["from_"], args["to"], args.get("rank_by"),
            args["order"] == "desc", args["by"]))
        if args["format"] == "csv":
            return _csv(service, answer, args.get("lang") or language(request.accept_languages))
        if args["group_by"] in ("grid", "station", "subcenter"):  # the unit's name beside its id, as in the CSV
            with service.uow() as uow:
                names = uow.store.area_names()
            answer["rows"] = [{**row, "area_name": names.get(row["area_id"])} for row in answer["rows"]]
        return answer


def _csv(service, answer: dict, lang: str) -> Response:
    with service.uow() as uow:
        area_names, known = uow.store.area_names(), {d.id: d for d in uow.store.departments()}
    categories = service.policy.categories
    columns, header, rows = exports.closure_times_table(
        answer, lang, area_names=area_names,
        department_names=lambda i: known[i].name(lang) if i in known else None,
        category_names=lambda code: getattr(categories[code], lang) if code in categories else None)
    by = "" if answer["by"] == "opened" else f"-by-{answer['by']}"
    name = f"closure-times-{answer['group_by']}-{answer['period']}{by}-{answer['from']}-{answer['to']}.csv"
    return Response(export_csv(columns, rows, header), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Content-Language": lang,
                             "Vary": "Accept-Language"})


class LimitChangeIn(Schema):
    """One level's new limit for one category × severity (``services/escalation/replay_limits.py``)."""

    class Meta:
        unknown = RAISE

    category = Text(LIMITS["category"], required=True, min_length=1)
    severity = Text(LIMITS["severity"], required=True, min_length=1)
    level = JsonInteger(required=True, validate=validate.Range(1, 4))
    amount = JsonFloat(required=True, validate=validate.Range(min=0, min_inclusive=False))
    unit = fields.String(required=True, validate=validate.OneOf(list(UNITS)))


class ReplayIn(Schema):
    class Meta:
        unknown = RAISE

    # within the route's 1 MiB body even if every character is sent as a 6-byte \uXXXX escape; a larger
    # file is replayed with `gridcase policy replay`
    policy = fields.String(validate=validate.Length(1, 100_000), metadata={
        "description": "the new policy file's text (TOML, as `gridcase policy check` reads it), "
                       "up to 100,000 characters; or send changes"})
    changes = fields.List(fields.Nested(LimitChangeIn), validate=validate.Length(1, 4000), metadata={
        "description": "instead of policy: the running policy with these level limits changed"})
    from_ = Day(required=True, data_key="from")
    to = Day(required=True)


class LimitOut(Schema):
    amount = fields.Float()
    unit = fields.String(validate=validate.OneOf(list(UNITS)))


class RuleLimitsOut(Schema):
    start_level = fields.Integer(metadata={"description": "the level (1–4) its cases open at"})
    limits = fields.Dict(keys=fields.String(), values=fields.Nested(LimitOut), metadata={
        "description": "level (\"1\"…\"4\", from the start level up) → its time limit"})


class CategoryLimitsOut(Schema):
    code = fields.String()
    zh = fields.String()
    en = fields.String()
    severity = fields.String(metadata={"description": "the category's default severity"})
    rules = fields.Dict(keys=fields.String(), values=fields.Nested(RuleLimitsOut),
                        metadata={"description": "severity → its start level and limits"})


class ReplayLimitsOut(Schema):
    severities = fields.List(fields.String())
    units = fields.List(fields.String())
    categories = fields.List(fields.Nested(CategoryLimitsOut))


@blp.route("/stats/replay")
class PolicyReplay(MethodView):
    @access("stats.replay")
    @blp.response(200, ReplayLimitsOut)
    def get(self):
        """The running policy's time limits that a replay's ``changes`` start from, per category ×
        severity × level, each in its own unit (levels below a rule's start level are never used and
        left out). ``GET /escalation/v1/stats/replay`` → ``{"severities": ["normal", "urgent"], "units":
        [...], "categories": [{"code": "street_light", "zh", "en", "severity": "normal", "rules": {"normal":
        {"start_level": 1, "limits": {"1": {"amount": 4.0, "unit": "working_hours"}, …}}}}]}``."""
        return replay_limits.limits(current_service().policy)

    @access("stats.replay")
    @blp.arguments(ReplayIn)
    @blp.response(200, description="side by side per unit and category: current and new")
    @blp.alt_response(413, description="the body is over the route's 1 MiB")
    def post(self, body):
        """What-if: how the cases opened on local dates ``[from, to)`` would have fared under a new
        policy — automatic escalations from each level, overdue at headquarters, closed on time —
        next to what their own frozen policies did, per unit (station) and category, with a total.
        The recorded human actions keep their times; deadlines are recomputed. A policy that does not
        validate answers ``422`` naming its line. Instead of ``policy``, ``changes`` (``[{"category",
        "severity", "level": 1–4, "amount", "unit"}]``) replay the running policy with those limits
        changed; one that cannot apply answers ``422`` naming it (``changes.2.amount``: longer than a
        year; ``changes.0.category``: not the policy's; ``changes.1.level``: below the rule's start level
        or given twice). Each row's ``unit_name`` is the station's name.

        ``POST /escalation/v1/stats/replay`` with ``{"policy": "…", "from": "2026-01-01", "to": "2026-02-01"}``
        → ``{"from", "to", "rows": [{"unit": "S1", "category": "street_light", "cases": 12,
        "current": {"escalations": {"1": 3, "2": 0, "3": 0}, "overdue": 0, "closed_on_time": 9}, "new": {…}}],
        "total": {…}}``
        """
        if body["to"] <= body["from_"]:
            abort(422, errors={"to": [Said("stats.to_after_from")]})
        if (body["to"] - body["from_"]).days > 366:
            abort(422, errors={"to": [Said("stats.at_most_a_year")]})
        if ("policy" in body) == ("changes" in body):
            abort(422, errors={"changes" if body.get("changes") else "policy": [Said("replay.policy_or_changes")]})
        service = current_service()
        try:
            policy = parse_policy(body["policy"], "policy") if "policy" in body else replay_limits.with_limits(
                service.policy, [replay_limits.LimitChange(**change) for change in body["changes"]])
            answer = service.run(handlers.replay_policy, handlers.Replay(policy, body["from_"], body["to"],
                                                                           identity()))
        except replay_limits.ChangeError as problem:
            abort(422, errors={"changes": {str(problem.index): {problem.field: [problem.said]}}})
        except PolicyError as refusal:  # names the line, in the caller's language
            raise Problem(refusal.located.code, http_status=422, field="policy", **refusal.located.params) from None
        except Invalid as refusal:
            raise Problem(refusal.code, http_status=422, field="policy", **refusal.params) from None
        except ValueError as refusal:  # a calendar the running city cannot build (an unknown holiday region)
            log.warning("a replayed policy cannot be used", error=str(refusal))
            raise Problem("policy.unusable", http_status=422, field="policy") from None
        with service.uow() as uow:
            names = uow.store.area_names()
        for row in answer["rows"]:
            row["unit_name"] = names.get(row["unit"])
        return answer
