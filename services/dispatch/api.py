"""Dispatch's HTTP interface: locate a point, read and import the area hierarchy."""
from __future__ import annotations

import json
from urllib.parse import quote

import shapely
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, fields, validate

from services.dispatch import handlers
from services.dispatch.areaindex import NoActiveAreas
from services.dispatch.domain.locate import OutsideCity
from shared.clock import isoformat
from shared.fields import LIMITS, JsonBoolean, QueryBoolean, QueryFloat, QueryInteger, Text
from shared.gcj02 import gcj02_to_wgs84
from shared.vocabulary import AREA_LEVELS
from shared.web import Blueprint, access, caller_language, current_service, problem
from shared.words import Problem, Said, say

blp = Blueprint("dispatch", __name__, url_prefix="/dispatch/v1", description="Areas and geographic routing")
MAP_TOLERANCE_DEG = 0.00005  # ~5 m: enough for a city map, a fraction of the vertices


class LocateArgs(Schema):
    class Meta:
        unknown = RAISE

    lon = QueryFloat(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = QueryFloat(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02"]),
                        metadata={"description": "gcj02: the offset coordinates of Chinese map apps"})


class AreasArgs(Schema):
    class Meta:
        unknown = RAISE

    level = fields.String(validate=validate.OneOf(AREA_LEVELS))
    version = QueryInteger(validate=validate.Range(1, 2**31 - 1))
    simplify = QueryBoolean(load_default=True)


class LevelsIn(Schema):
    """One GeoJSON FeatureCollection per level."""

    class Meta:
        unknown = RAISE

    hq = fields.Dict(required=True)
    subcenter = fields.Dict(required=True)
    station = fields.Dict(required=True)
    grid = fields.Dict(required=True)


class ImportIn(Schema):
    class Meta:
        unknown = RAISE

    levels = fields.Nested(LevelsIn, required=True)
    activate = JsonBoolean(load_default=True)
    repair = JsonBoolean(load_default=False)
    source = Text(LIMITS["source"], min_length=1, load_default="api")


class AreaRefOut(Schema):
    id = fields.String()
    name = fields.String()


class CandidateOut(Schema):
    id = fields.String()
    distance_m = fields.Float(metadata={"description": "metres from the point to the grid"})


class LocateOut(Schema):
    grid = fields.Nested(AreaRefOut, allow_none=True)
    station = fields.Nested(AreaRefOut, allow_none=True)
    subcenter = fields.Nested(AreaRefOut, allow_none=True)
    hq = fields.Nested(AreaRefOut)
    triage = fields.Boolean()
    candidates = fields.List(fields.Nested(CandidateOut))
    version = fields.Integer()
    lon = fields.Float(metadata={"description": "degrees, WGS84 (after any GCJ-02 conversion)"})
    lat = fields.Float()


class VersionOut(Schema):
    version = fields.Integer()
    active = fields.Boolean()
    source = fields.String()
    created_at = fields.String(metadata={"description": "ISO 8601 UTC"})
    activated_at = fields.String(allow_none=True)
    summary = fields.Dict(metadata={"description": "areas per level and the number of warnings"})


class AreasOut(Schema):
    """Without ``level``: ``versions``. With ``level``: a GeoJSON FeatureCollection (``type``,
    ``version``, ``features`` with ``properties`` ``id``, ``name``, ``level``, ``parent``)."""
    versions = fields.List(fields.Nested(VersionOut))
    type = fields.String()
    version = fields.Integer()
    features = fields.List(fields.Dict())


class ImportOut(Schema):
    version = fields.Integer()
    active = fields.Boolean()
    findings = fields.List(fields.Dict(), metadata={"description": "warnings: severity, level, feature, problem"})
    moves = fields.List(fields.Dict(), metadata={"description": "open cases re-routed: case_id, number, from, to"})


def _active():
    try:
        return current_service().areas.current()
    except NoActiveAreas:
        raise Problem("areas.none_active", http_status=503) from None


@blp.route("/locate")
class Locate(MethodView):
    @access("point.locate")
    @blp.arguments(LocateArgs, location="query")
    @blp.response(200, LocateOut)
    def get(self, args):
        """Point → grid → station → sub-center → headquarters.

        ``GET /dispatch/v1/locate?lon=13.40&lat=52.52`` → ``{"grid": {"id", "name"}, "station": …,
        "subcenter": …, "hq": …, "triage": false, "candidates": [], "version": 1}``. A point in no
        grid goes to the lowest level holding it with ``triage: true`` and the nearest grids.
        """
        lon, lat = args["lon"], args["lat"]
        if args["crs"] == "gcj02":
            lon, lat = gcj02_to_wgs84(lon, lat)
        active = _active()
        try:
            location = active.locator.locate(lon, lat)
        except OutsideCity:
            raise Problem("areas.outside_city", http_status=404, lon=lon, lat=lat, version=active.version) from None
        return {**location.owners.to_json(), "triage": location.triage,
                "candidates": [{"id": c.id, "distance_m": round(c.distance_m, 1)} for c in location.candidates],
                "version": active.version, "lon": lon, "lat": lat}


@blp.route("/areas")
class Areas(MethodView):
    @access("areas.read")
    @blp.arguments(AreasArgs, location="query")
    @blp.response(200, AreasOut)
    def get(self, args):
        """Without ``level``: the versions. With ``level``: that level as a GeoJSON FeatureCollection."""
        if "level" not in args:
            with current_service().uow() as uow:
                return {"versions": [{"version": v.id, "active": v.active, "source": v.source,
                                      "created_at": isoformat(v.created_at), "summary": v.summary,
                                      "activated_at": isoformat(v.activated_at) if v.activated_at else None}
                                     for v in uow.store.versions()]}
        active = _active()
        if args.get("version") not in (None, active.version):
            with current_service().uow() as uow:
                if args["version"] not in {v.id for v in uow.store.versions()}:
                    raise Problem("areas.no_version", http_status=404, version=args["version"])
                hierarchy = uow.store.load_hierarchy(args["version"])
            version = args["version"]
        else:
            hierarchy, version = active.hierarchy, active.version
        return feature_collection(hierarchy.level(args["level"]), version, args["simplify"])

    @access("areas.import")
    @blp.arguments(ImportIn)
    @blp.response(201, ImportOut)
    def post(self, body):
        """Import a new version: ``{"levels": {"hq": FC, "subcenter": FC, "station": FC, "grid": FC},
        "activate": true}`` → ``201`` with the version, or ``422`` with every finding."""
        service = current_service()
        result = service.run(handlers.import_areas, handlers.ImportAreas(
            body["levels"], source=body["source"], activate=body["activate"], repair=body["repair"]))
        report = [f.to_dict() for f in result.findings]
        if result.version is None:
            errors = sum(1 for f in report if f["severity"] == "error")
            return problem(422, None, say("areas.import_errors", caller_language(), count=errors),
                           code="areas.import_errors", findings=report)
        service.areas.invalidate()
        return {"version": result.version, "active": body["activate"], "findings": report,
                "moves": [m.to_dict() for m in result.moves]}, 201


class NoArgs(Schema):
    class Meta:
        unknown = RAISE


class DepartmentOut(Schema):
    id = fields.String(metadata={"description": "the department's id (tokens, assignments, statistics)"})
    zh = fields.String()
    en = fields.String()
    serves = fields.String(metadata={"description": "the area it serves: headquarters (the city) or a sub-center"})
    leads = fields.List(fields.String(), metadata={"description": "categories it leads (主办)"})
    co_handles = fields.List(fields.String(), metadata={"description": "categories it co-handles (协办)"})


class DepartmentsOut(Schema):
    departments = fields.List(fields.Nested(DepartmentOut))


@blp.route("/departments")
class Departments(MethodView):
    @access("departments.read")
    @blp.arguments(NoArgs, location="query")
    @blp.response(200, DepartmentsOut)
    def get(self, _args):
        """The city's functional departments (职能部门), by id: ``{"departments": [{"id": "water", "zh":
        "市自来水公司", "en": "City Water Company", "serves": "HQ", "leads": ["water_main_burst"],
        "co_handles": []}, …]}``. Imported with ``gridcase departments import FILE``."""
        found = current_service().run(handlers.list_departments)
        return {"departments": [d.to_dict() for d in found]}


#: Where a transfer is asked for since escalation, the owner of the case, decides every change of owner.
TRANSFER_ACTION = "/escalation/v1/cases/{case_id}/actions"


@blp.route("/cases/<case_id>/transfer")
class Transfer(MethodView):
    @access("case.transfer")
    @blp.doc(deprecated=True)
    @blp.alt_response(410, description="gone: transfer with escalation's transfer action")
    def post(self, case_id):
        """Gone (``410``): a case is transferred with escalation's action, the one rule for every change
        of owner (``services/escalation/domain/ownership.py``), which answers who may (``403``), when
        (``409``), under which revision (``If-Match``, ``412``) and where to (``422``) at once:

        ``POST /escalation/v1/cases/{id}/actions`` with ``If-Match: "<ETag>"`` and
        ``{"action": "transfer", "to": "SC01-ST02-G0007", "reason": "reported on the wrong side of the river"}``.

        The answer names that path in ``Link`` (``rel="alternate"``); nothing is read or changed here.
        """
        target = TRANSFER_ACTION.format(case_id=quote(case_id, safe=""))
        abort(410, message=Said("areas.transfer_moved", target=target),
              headers={"Link": f'<{target}>; rel="alternate"'})


def feature_collection(areas, version: int, simplify: bool) -> dict:
    geometries = [a.geometry for a in areas]
    if simplify and geometries:
        geometries = shapely.simplify(geometries, MAP_TOLERANCE_DEG, preserve_topology=True)
    return {"type": "FeatureCollection", "version": version, "features": [
        {"type": "Feature", "id": a.id,
         "properties": {"id": a.id, "name": a.name, "level": a.level, "parent": a.parent},
         "geometry": json.loads(shapely.to_geojson(g))} for a, g in zip(areas, geometries, strict=True)]}
