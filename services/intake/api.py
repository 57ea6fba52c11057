"""Intake's HTTP interface: grid workers' reports."""
from __future__ import annotations

import functools
import re
from datetime import UTC

from flask import request
from flask.views import MethodView
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.intake import handlers
from services.intake.domain.reports import NewReport
from services.intake.limits import precheck
from shared.access import Resource
from shared.clock import isoformat
from shared.departments import handlers_of
from shared.fields import LIMITS, Instant, JsonBoolean, JsonFloat, QueryBoolean, QueryInteger, Text
from shared.gcj02 import gcj02_to_wgs84
from shared.vocabulary import Role
from shared.web import Blueprint, access, authorize, caller_language, current_service, deny, identity, lookup
from shared.words import Problem, Said, note_text

blp = Blueprint("intake", __name__, url_prefix="/intake/v1", description="Grid workers' reports")
KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


class LocationIn(Schema):
    class Meta:
        unknown = RAISE

    lon = JsonFloat(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = JsonFloat(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    accuracy = JsonFloat(allow_nan=False, validate=validate.Range(0, 10_000_000), metadata={
        "description": "the phone's accuracy radius in metres; worse than the configured limit (200 m by "
                       "default) is no usable fix"})
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02"]), metadata={
        "description": "gcj02: offset coordinates from a Chinese map SDK (Amap, Tencent), converted to WGS84"})


class ReportIn(Schema):
    class Meta:
        unknown = RAISE

    category = Text(LIMITS["category"], min_length=1, required=True, metadata={"example": "street_light"})
    description = Text(LIMITS["description"], min_length=1, multiline=True, required=True)
    location = fields.Nested(LocationIn, metadata={
        "description": "required, except from a grid worker without a GPS fix (the case then goes to their grid)"})
    client_time = Instant(metadata={
        "description": "the phone's clock when the report was written (ISO 8601 with an offset, from "
                       "1970 to 2100); kept apart from the server's reported_at"})
    severity = Text(LIMITS["severity"], min_length=1, metadata={
        "description": "the severity the reporter proposes (one the policy rules for: GET /intake/v1/categories "
                       "lists each category's); staff confirm or change it at acceptance. Default: the "
                       "category's"})


class ReportOut(Schema):
    id = fields.String()
    number = fields.String()
    status = fields.String()
    category = fields.String()
    severity = fields.String()
    description = fields.String()
    location = fields.Dict(allow_none=True, metadata={"description": "WGS84 lon, lat and accuracy (m); null: none"})
    location_unverified = fields.Boolean(metadata={
        "description": "no usable position: routed to the reporting grid worker's own grid"})
    client_time = fields.String(allow_none=True)
    reporter = fields.String()
    reported_at = fields.String()
    updated_at = fields.String()
    level = fields.Integer(allow_none=True)
    owner_area_id = fields.String(allow_none=True)
    deadline_at = fields.String(allow_none=True, metadata={
        "description": "ISO 8601 UTC: the case's deadline at its current level, as escalation last announced it "
                       "(its events, which intake follows); null before the case opens, once it ends, and while "
                       "no deadline runs (suspended, held with a department). The time left is this minus now"})
    duplicate_of = fields.Dict(allow_none=True, metadata={
        "description": "the case this report repeats (a nearby duplicate) or was merged into (id, number, status, "
                       "level): its own status follows that case's"})
    status_note = fields.String(allow_none=True, metadata={
        "description": "why it ended without a fix: refused (不予立案: the reason and a note), voided (作废), "
                       "merged or linked into another case; the system's words in the caller's language "
                       "(Accept-Language), a person's (a void's reason, a refusal's note) as written"})


class ReportListArgs(Schema):
    class Meta:
        unknown = RAISE

    mine = QueryBoolean(required=True, validate=validate.Equal(True), metadata={
        "description": "1: the reports the caller filed (the only listing so far)"})
    page = QueryInteger(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = QueryInteger(load_default=50, validate=validate.Range(1, 500))


class ReportListOut(Schema):
    items = fields.List(fields.Nested(ReportOut))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class CategoryOut(Schema):
    code = fields.String()
    zh = fields.String()
    en = fields.String()
    severity = fields.String(metadata={"description": "the default severity of its reports"})
    start_level = fields.String()
    unit = fields.String(allow_none=True, metadata={"description": "an area id that takes all its cases"})
    group = fields.Dict(allow_none=True, metadata={
        "description": "GB/T 30428: {code: facilities (部件) | events (事件), zh, en}"})
    # "class" is a Python keyword: the field is declared under another name and keeps its JSON key
    class_ = fields.Dict(data_key="class", attribute="class", allow_none=True,
                         metadata={"description": "the class (大类) within the group: {code, zh, en}"})
    severities = fields.List(fields.String(), metadata={"description": "severities the policy has rules for"})
    lead_department = fields.String(allow_none=True, metadata={
        "description": "the department that leads its cases (主办), or null"})
    co_departments = fields.List(fields.String(), metadata={"description": "the co-handling departments (协办)"})


def rate_limited(view):
    """Refuse a reporter this process refused already, whose window has not ended, before the body is
    read (``services.intake.limits``; the count itself is the database's, in ``submit_report``), but not
    the retry of a report they stored (its ``Idempotency-Key``): that is answered with the report."""
    @functools.wraps(view)
    def limited(*args, **kwargs):
        caller, key = identity(), request.headers.get("Idempotency-Key")
        service = current_service()
        precheck(service.limits, lambda limits: limits.report, caller,
                 lambda: key is not None and KEY.match(key) is not None
                 and service.run(handlers.stored_report, caller, key) is not None)
        return view(*args, **kwargs)
    return limited


def report_view(report, linked=None) -> dict:
    """A report as its reader sees it (``ReportOut``); ``linked``: the case a duplicate repeats, as it stands
    now. ``status``, ``level``, ``owner_area_id`` and ``deadline_at`` (ISO 8601 UTC, or null: no deadline
    runs) follow the report's case as escalation's events announce it (``handlers._followed``), so a phone
    shows where its reports stand and how much time is left without asking escalation for each case."""
    location = None if report.lon is None else {"lon": report.lon, "lat": report.lat}
    if location and report.accuracy_m is not None:
        location["accuracy"] = report.accuracy_m
    zone = current_service().settings.time_zone
    return {"id": report.id, "number": report.number_in(zone), "status": report.status,
            "category": report.category, "severity": report.severity, "description": report.description,
            "location": location, "location_unverified": report.location_unverified,
            "client_time": isoformat(report.client_time) if report.client_time else None, "reporter": report.reporter,
            "reported_at": isoformat(report.reported_at), "updated_at": isoformat(report.updated_at),
            "level": report.level, "owner_area_id": report.owner_area_id,
            "deadline_at": isoformat(report.deadline_at) if report.deadline_at else None,
            "status_note": note_text(report.status_note, caller_language()) if report.status_note else None,
            "duplicate_of": {"id": linked.id, "number": linked.number_in(zone), "status": linked.status,
                             "level": linked.level}
            if linked else None}


def full_view(report) -> dict:
    """``report_view`` with the case a duplicate repeats read now."""
    return report_view(report, current_service().run(handlers.linked_case, report) if report.duplicate_of else None)


@blp.route("/reports")
class Reports(MethodView):
    @access("report.submit")
    @rate_limited
    @blp.arguments(ReportIn)
    @blp.response(201, ReportOut)
    @blp.alt_response(422, description="invalid report, or Idempotency-Key reused with another report")
    def post(self, body):
        """File a report (send an ``Idempotency-Key`` header and retry freely).

        ``{"category": "street_light", "description": "Lamp out at gate 3",
        "location": {"lon": 102.26, "lat": 27.89}}`` → ``201 {"id": "…", "number": "20260105-000001",
        "status": "reported", …}``. The same key and report again → the same case.
        """
        caller = identity()
        key = request.headers.get("Idempotency-Key")
        if key is not None and not KEY.match(key):
            raise Problem("report.key_invalid", http_status=422, field="Idempotency-Key")
        submitted = current_service().run(handlers.submit_report, new_report(body), caller, key)
        return full_view(submitted.report)

    @access("report.list")
    @blp.arguments(ReportListArgs, location="query")
    @blp.response(200, ReportListOut)
    def get(self, args):
        """The reports the caller filed, newest first, with their case's current status and level.

        ``GET /intake/v1/reports?mine=1&page=1&page_size=20`` → ``{"items": [{"id", "number", "status",
        "level", …}], "total": 42, "page": 1, "page_size": 20}``
        """
        found, total = current_service().run(handlers.my_reports, identity(), args["page"], args["page_size"])
        return {"items": [full_view(r) for r in found], "total": total, "page": args["page"],
                "page_size": args["page_size"]}


def new_report(body: dict) -> NewReport:
    """The command from a report's body: GCJ-02 positions converted to WGS84 (``shared.gcj02``), the
    client's time in UTC."""
    location = body.get("location")
    lon = lat = accuracy = None
    if location:
        lon, lat, accuracy = location["lon"], location["lat"], location.get("accuracy")
        if location["crs"] == "gcj02":
            lon, lat = gcj02_to_wgs84(lon, lat)
    client_time = body.get("client_time")
    return NewReport(body["category"], body["description"], lon, lat, accuracy,
                     client_time.astimezone(UTC) if client_time else None, body.get("severity"))


@blp.route("/reports/<report_id>")
class Report(MethodView):
    @access("report.read")
    @blp.response(200, ReportOut)
    def get(self, report_id):
        """A report and its current status. A grid worker sees only their own reports."""
        caller = identity()
        service = current_service()
        with service.uow() as uow:
            report = uow.store.get(report_id, caller)
        if report is None:
            deny(caller, "report.read", code="report.not_found")
        departments = service.run(handlers.departments_of, report.id) if caller.role == Role.DEPARTMENT else ()
        authorize("report.read", Resource(report.owners, report.reporter, frozenset(departments)))
        return full_view(report)


@blp.route("/reports/<report_id>/unlink")
class Unlink(MethodView):
    @access("duplicate.unlink")
    @blp.response(200, ReportOut)
    @blp.alt_response(404, description="no such report in the caller's area")
    @blp.alt_response(409, description="the report is not linked as a duplicate")
    @lookup("duplicate.unlink", "report.not_found")
    def post(self, report_id):
        """Staff: a report linked as a duplicate is a case of its own after all (it is dispatched now).

        ``POST /intake/v1/reports/6f1c…/unlink`` → ``200`` with the report, ``duplicate_of: null``.
        """
        report = current_service().run(handlers.unlink_duplicate, handlers.Unlink(report_id, identity()))
        return report_view(report)


class VerificationIn(Schema):
    class Meta:
        unknown = RAISE

    passed = JsonBoolean(required=True, metadata={"description": "true: the fix holds on site; false: rework"})
    note = Text(LIMITS["description"], multiline=True, load_default="",
                metadata={"description": "required when the check failed: what is still wrong"})

    @validates_schema
    def _note_when_failed(self, data, **kwargs):
        if data.get("passed") is False and not data.get("note", "").strip():
            raise ValidationError(Said("verification.note_required"), field_name="note")


class VerificationOut(Schema):
    case_id = fields.String()
    passed = fields.Boolean()
    note = fields.String()
    verifier = fields.String()
    at = fields.String(metadata={"description": "ISO 8601 UTC"})


@blp.route("/cases/<case_id>/verification")
class Verification(MethodView):
    @access("case.verify")
    @blp.arguments(VerificationIn)
    @blp.response(202, VerificationOut)
    @blp.alt_response(403, description="the caller sees the case but does not verify it: only the grid worker of "
                                       "its grid, or the station where the grid worker made the fix (or the case "
                                       "is in no grid); never the person who made the fix")
    @blp.alt_response(404, description="no such case in the caller's area")
    @blp.alt_response(409, description="the case is not awaiting verification, or its verification was sent "
                                        "already (of concurrent ones, the first wins)")
    @lookup("case.verify", "verification.not_found")
    def post(self, body, case_id):
        """The on-site verification (核查) of a resolved case: by the grid worker of its grid, or by the
        station when the grid worker fixed it on the spot (就地解决) or the case lies in no grid; never by
        the person who made the fix (GB/T 30428: the check is someone else's than the handler's).

        ``{"passed": false, "note": "the lamp is still out"}`` → ``202`` with the verdict; escalation
        closes the case (passed) or sends it back for rework (failed), and the report's status follows.
        """
        verified = current_service().run(handlers.verify_case,
                                         handlers.Verify(case_id, body["passed"], body["note"], identity()))
        return {"case_id": verified.case_id, "passed": verified.passed, "note": verified.note,
                "verifier": verified.verifier, "at": isoformat(verified.at)}


@blp.route("/categories")
class Categories(MethodView):
    @access("categories.read")
    @blp.doc(security=[])  # public: a phone shows the list before anyone signs in
    @blp.response(200, CategoryOut(many=True))
    def get(self):
        """The report categories of the policy, with names in Chinese and English, and the functional
        departments that handle their cases (``lead_department``, ``co_departments``: the policy's own
        where it names them, else the city's departments file, ``shared.departments.handlers_of``)."""
        service = current_service()
        city = service.run(handlers.city_departments)
        out = []
        for c in service.policy.categories.values():
            chosen = handlers_of(c.code, city, lead=c.lead_department, co=c.co_departments)
            out.append({**service.policy.describe(c), "lead_department": chosen.lead,
                        "co_departments": list(chosen.co)})
        return out
