"""Intake's HTTP interface: grid workers' reports."""
from __future__ import annotations

import re

from flask import request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.intake import handlers
from services.intake.domain.reports import (
    IdempotencyConflict,
    NewReport,
    NotAwaitingVerification,
    NotItsGridWorker,
    UnknownCategory,
)
from shared.auth import ROLES
from shared.clock import isoformat
from shared.fields import LIMITS, JsonBoolean, JsonFloat, Text
from shared.web import Blueprint, current_service, identity, roles

blp = Blueprint("intake", __name__, url_prefix="/intake/v1", description="Grid workers' reports")
REPORTERS = ("grid_worker", "station", "subcenter", "command", "admin")
KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


class LocationIn(Schema):
    class Meta:
        unknown = RAISE

    lon = JsonFloat(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = JsonFloat(required=True, allow_nan=False, validate=validate.Range(-90, 90))


class ReportIn(Schema):
    class Meta:
        unknown = RAISE

    category = Text(LIMITS["category"], min_length=1, required=True, metadata={"example": "street_light"})
    description = Text(LIMITS["description"], min_length=1, multiline=True, required=True)
    location = fields.Nested(LocationIn, required=True)


class ReportOut(Schema):
    id = fields.String()
    number = fields.String()
    status = fields.String()
    category = fields.String()
    severity = fields.String()
    description = fields.String()
    location = fields.Dict()
    reporter = fields.String()
    reported_at = fields.String()
    updated_at = fields.String()
    level = fields.Integer(allow_none=True)
    owner_area_id = fields.String(allow_none=True)


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


def report_view(report) -> dict:
    return {"id": report.id, "number": report.number_in(current_service().time_zone), "status": report.status,
            "category": report.category, "severity": report.severity, "description": report.description,
            "location": {"lon": report.lon, "lat": report.lat}, "reporter": report.reporter,
            "reported_at": isoformat(report.reported_at), "updated_at": isoformat(report.updated_at),
            "level": report.level, "owner_area_id": report.owner_area_id}


@blp.route("/reports")
class Reports(MethodView):
    @roles(*REPORTERS)
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
            abort(422, errors={"Idempotency-Key": ["must be 1-128 printable ASCII characters"]})
        service = current_service()
        report = NewReport(body["category"], body["description"],
                           body["location"]["lon"], body["location"]["lat"])
        try:
            submitted = service.run(handlers.submit_report, report, caller.user, key)
        except UnknownCategory:
            abort(422, errors={"category": [f"unknown category; one of {', '.join(service.policy.categories)}"]})
        except IdempotencyConflict:
            abort(422, errors={"Idempotency-Key": ["already used for a different report"]})
        return report_view(submitted.report)


@blp.route("/reports/<report_id>")
class Report(MethodView):
    @blp.response(200, ReportOut)
    def get(self, report_id):
        """A report and its current status. A grid worker sees only their own reports."""
        caller = identity()
        with current_service().uow() as uow:
            report = uow.store.get(report_id, caller)
        if report is None:
            abort(404, message="no such report")
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
            raise ValidationError("say what is still wrong when the check fails", field_name="note")


class VerificationOut(Schema):
    case_id = fields.String()
    passed = fields.Boolean()
    note = fields.String()
    verifier = fields.String()
    at = fields.String(metadata={"description": "ISO 8601 UTC"})


@blp.route("/cases/<case_id>/verification")
class Verification(MethodView):
    @roles(*ROLES)
    @blp.arguments(VerificationIn)
    @blp.response(202, VerificationOut)
    @blp.alt_response(403, description="the caller sees the case but is not the grid worker of its grid")
    @blp.alt_response(404, description="no such case in the caller's area")
    @blp.alt_response(409, description="the case is not awaiting verification")
    def post(self, body, case_id):
        """The grid worker's on-site verification (核查) of a resolved case.

        ``{"passed": false, "note": "the lamp is still out"}`` → ``202`` with the verdict; escalation
        closes the case (passed) or sends it back for rework (failed), and the report's status follows.
        """
        caller = identity()
        try:
            verified = current_service().run(handlers.verify_case,
                                             handlers.Verify(case_id, body["passed"], body["note"], caller))
        except LookupError:
            abort(404, message="no such case")
        except NotItsGridWorker:
            abort(403, message="only the grid worker of the case's grid verifies it on site")
        except NotAwaitingVerification as exc:
            abort(409, message=f"the case is not awaiting verification (it is {exc})")
        return {"case_id": verified.case_id, "passed": verified.passed, "note": verified.note,
                "verifier": verified.verifier, "at": isoformat(verified.at)}


@blp.route("/categories")
class Categories(MethodView):
    @blp.doc(security=[])  # public: a phone shows the list before anyone signs in
    @blp.response(200, CategoryOut(many=True))
    def get(self):
        """The report categories of the policy, with names in Chinese and English."""
        policy = current_service().policy
        return [policy.describe(c) for c in policy.categories.values()]
