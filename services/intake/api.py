"""Intake's HTTP interface: grid workers' reports."""
from __future__ import annotations

import re

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from services.intake import handlers, store
from services.intake.domain.reports import IdempotencyConflict, NewReport, UnknownCategory, report_number
from shared.clock import isoformat
from shared.fields import LIMITS, JsonFloat, Text
from shared.web import identity, roles

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
    severity = fields.String()
    start_level = fields.String()


def report_view(row) -> dict:
    return {"id": row.id, "number": report_number(row.seq, row.reported_at), "status": row.status,
            "category": row.category, "severity": row.severity, "description": row.description,
            "location": {"lon": row.lon, "lat": row.lat}, "reporter": row.reporter,
            "reported_at": isoformat(row.reported_at), "updated_at": isoformat(row.updated_at),
            "level": row.level, "owner_area_id": row.owner_area_id}


def deps():
    return current_app.extensions["gridcase"]


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
        from flask import request

        caller = identity()
        key = request.headers.get("Idempotency-Key")
        if key is not None and not KEY.match(key):
            abort(422, errors={"Idempotency-Key": ["must be 1-128 printable ASCII characters"]})
        d = deps()
        report = NewReport(body["category"], body["description"],
                           body["location"]["lon"], body["location"]["lat"])
        try:
            submitted = handlers.submit_report(report, reporter=caller.user, idempotency_key=key,
                                               writer=d.writer, clock=d.clock, policy=d.policy)
        except UnknownCategory:
            abort(422, errors={"category": [f"unknown category; one of {', '.join(d.policy.categories)}"]})
        except IdempotencyConflict:
            abort(422, errors={"Idempotency-Key": ["already used for a different report"]})
        return report_view(submitted.row)


@blp.route("/reports/<report_id>")
class Report(MethodView):
    @blp.response(200, ReportOut)
    def get(self, report_id):
        """A report and its current status. A grid worker sees only their own reports."""
        caller = identity()
        with deps().engine.connect() as connection:
            row = store.get(connection, report_id)
        if row is None or (caller.role == "grid_worker" and row.reporter != caller.user):
            abort(404, message="no such report")
        return report_view(row)


@blp.route("/categories")
class Categories(MethodView):
    @blp.doc(security=[])  # public: a phone shows the list before anyone signs in
    @blp.response(200, CategoryOut(many=True))
    def get(self):
        """The report categories of the policy, with names in Chinese and English."""
        return [vars(c) for c in deps().policy.categories.values()]
