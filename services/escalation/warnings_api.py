"""Early warning (预警) over HTTP, on escalation's blueprint: the items the caller may see, staff
acknowledging and closing them, and the desk's hotspot counts (reports per grid and category)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from services.escalation import early_warnings
from services.escalation.api import LocationOut, blp
from services.escalation.domain.early_warnings import ACTIONS, ACTIVE, STATUSES
from shared.fields import LIMITS, QueryInteger, Text
from shared.web import access, current_service, deny, identity, lookup
from shared.words import Said


class WarningStatuses(fields.String):
    """One status or several, comma-separated (``open,acknowledged``) → a list; a problem names ``status``."""

    def _deserialize(self, value, attr, data, **kwargs) -> list[str]:
        names = super()._deserialize(value, attr, data, **kwargs).split(",")
        if any(n not in STATUSES for n in names):
            raise ValidationError(Said("schema.one_or_several_of", choices=", ".join(STATUSES)))
        return names


class WarningListArgs(Schema):
    class Meta:
        unknown = RAISE

    status = WarningStatuses(load_default=list(ACTIVE), metadata={
        "description": "open, acknowledged, closed, or several separated by commas (default open,acknowledged)"})
    category = Text(LIMITS["category"], min_length=1)
    page = QueryInteger(load_default=1, validate=validate.Range(1, 1_000_000))
    page_size = QueryInteger(load_default=100, validate=validate.Range(1, 500))


class WarningHistoryOut(Schema):
    at = fields.String(metadata={"description": "ISO 8601 UTC"})
    action = fields.String(validate=validate.OneOf(["opened", "acknowledged", "closed"]))
    actor = fields.String()
    note = fields.String()


class WarningOut(Schema):
    id = fields.String()
    rule = fields.String(metadata={"description": "the name of the policy's [[early_warnings]] rule"})
    kind = fields.String(validate=validate.OneOf(["cluster", "recurring"]))
    category = fields.String()
    area_id = fields.String(metadata={"description": "the grid (or lowest owning area) of the report that "
                                                     "raised it"})
    reports = fields.List(fields.String(), metadata={"description": "the case ids in it, oldest first"})
    count = fields.Integer(metadata={"description": "how many cases are in it"})
    status = fields.String(validate=validate.OneOf(list(STATUSES)))
    opened_at = fields.String(metadata={"description": "ISO 8601 UTC"})
    updated_at = fields.String(metadata={"description": "ISO 8601 UTC"})
    location = fields.Nested(LocationOut, allow_none=True, metadata={
        "description": "the mean position of its reports (degrees WGS84); null when none is located"})
    radius_m = fields.Float(allow_none=True, metadata={"description": "a cluster rule's radius, metres"})
    history = fields.List(fields.Nested(WarningHistoryOut))


class WarningListOut(Schema):
    items = fields.List(fields.Nested(WarningOut))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class WarningActionIn(Schema):
    class Meta:
        unknown = RAISE

    action = fields.String(required=True, validate=validate.OneOf(list(ACTIONS)), metadata={
        "description": "acknowledge (an open item) or close (an open or acknowledged one)"})
    note = Text(LIMITS["description"], multiline=True, required=True)


@blp.route("/warnings")
class Warnings(MethodView):
    @access("warning.read")
    @blp.arguments(WarningListArgs, location="query")
    @blp.response(200, WarningListOut)
    def get(self, args):
        """The early-warning items (预警) the caller may see — those holding a case in the caller's area —
        newest first; ``status`` (default the active ones: open, acknowledged) and ``category`` filter.

        ``GET /escalation/v1/warnings`` → ``{"items": [{"id": "9b2e…", "rule": "street_light_cluster",
        "kind": "cluster", "category": "street_light", "area_id": "SC01-ST03-G0042", "reports": ["6f1c…", …],
        "count": 5, "status": "open", "opened_at": "2026-01-05T13:00:00.000Z", "location": {"lon": 121.47,
        "lat": 31.23}, "radius_m": 200.0, "history": [{"at", "action": "opened", "actor": "system", "note": ""}]}],
        "total": 1, "page": 1, "page_size": 100}``
        """
        caller = identity()
        with current_service().uow() as uow:
            found, total = uow.store.early_warnings.page(caller, args["status"], args["page"], args["page_size"],
                                                         args.get("category"))
        return {"items": [early_warnings.describe(item) for item in found], "total": total, "page": args["page"],
                "page_size": args["page_size"]}


@blp.route("/warnings/<item_id>")
class WarningDetail(MethodView):
    @access("warning.read")
    @blp.response(200, WarningOut)
    def get(self, item_id):
        """One early-warning item; 404 when it is unknown or holds no case of the caller's area."""
        caller = identity()
        with current_service().uow() as uow:
            item = uow.store.early_warnings.get(item_id, caller)
        if item is None:
            deny(caller, "warning.read", code="warning.not_found")
        return early_warnings.describe(item)


@blp.route("/warnings/<item_id>/actions")
class WarningActions(MethodView):
    @access("warning.act")
    @blp.arguments(WarningActionIn)
    @blp.response(200, WarningOut)
    @blp.alt_response(404, description="no such early warning in the caller's area")
    @blp.alt_response(409, description="the item's status does not allow the action (acknowledge a closed one)")
    @lookup("warning.act", "warning.not_found")
    def post(self, body, item_id):
        """Acknowledge (an open item) or close (an open or acknowledged one) an early warning, with a note;
        staff of the areas it touches (station, sub-center, command) and admins. Each change is a row of the
        audit trail. A closed item's reports never count again; a report near it later starts afresh.

        ``POST /escalation/v1/warnings/9b2e…/actions`` with ``{"action": "acknowledge", "note": "a cable
        fault: the power company is on it"}`` → ``200`` with the item, now ``acknowledged``.
        """
        item = current_service().run(early_warnings.act_on_warning, early_warnings.WarningAction(
            item_id, body["action"], body["note"], identity()))
        return early_warnings.describe(item)


class HotspotArgs(Schema):
    class Meta:
        unknown = RAISE

    from_ = fields.Date(required=True, data_key="from", metadata={
        "description": "first local date (the city's time zone), included"})
    to = fields.Date(required=True, metadata={"description": "last local date, excluded (half-open)"})
    category = Text(LIMITS["category"], min_length=1)


class HotspotRowOut(Schema):
    area_id = fields.String(metadata={"description": "a grid id"})
    category = fields.String()
    reports = fields.Integer(metadata={"description": "cases opened there in the period"})


class HotspotsOut(Schema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    time_zone = fields.String()
    rows = fields.List(fields.Nested(HotspotRowOut))


@blp.route("/stats/hotspots")
class HotspotCounts(MethodView):
    @access("stats.read")
    @blp.arguments(HotspotArgs, location="query")
    @blp.response(200, HotspotsOut)
    def get(self, args):
        """Hotspots: the cases opened on local dates ``[from, to)`` (at most three years) in the caller's
        area scope, counted per grid and category, the most first (cases in no grid are left out) — the
        desk colours the grids with it.

        ``GET /escalation/v1/stats/hotspots?from=2026-01-01&to=2026-02-01&category=street_light`` →
        ``{"from", "to", "time_zone": "Asia/Shanghai", "rows": [{"area_id": "SC01-ST03-G0042",
        "category": "street_light", "reports": 19}, …]}``
        """
        if args["to"] <= args["from_"]:
            abort(422, errors={"to": [Said("stats.to_after_from")]})
        if (args["to"] - args["from_"]).days > 3 * 366:
            abort(422, errors={"to": [Said("stats.at_most_years", years=3)]})
        return current_service().run(early_warnings.hotspots, early_warnings.Hotspots(
            identity(), args["from_"], args["to"], args.get("category")))
