"""Open311 GeoReport v2 at ``/open311/v2`` (https://wiki.open311.org/GeoReport_v2): the city's public
face for 311 apps.

**What is public** is decided here and in the policy, nowhere else:

- only the categories the policy marks ``public = true`` are services: listed, defined, and accepted in a
  ``POST requests`` (another ``service_code`` is unknown, 400);
- only the requests filed through Open311 (reporter ``open311:<key name>``) in those categories are
  listed or found by id: a grid worker's or staff member's report — its description, position and case
  id — is never published, whatever its category (``PublicQuery``);
- a **duplicate** (a request linked to an open case nearby) is never listed, but found by its id (whoever
  holds the id filed it);
- a category marked ``sensitive = true`` has its positions rounded to ``SENSITIVE_DECIMALS`` decimals
  (about 100 m) and no ``media_url``: such a place points at a household or its car;
- ``media_url`` is the request's earliest photo, served at ``GET media/{photo_id}`` (public, cleaned of
  metadata as every stored photo is, only for a request that is public and not sensitive).

**Endpoints**

- ``GET services.{json|xml}``: the public categories; ``group`` is the category's class (GB/T 30428
  大类, e.g. "Public utilities"). ``GET services/{code}.{json|xml}``: a service definition (no extra
  attributes: every service has ``metadata: false``).
- ``POST requests.{json|xml}`` (form-encoded, as the spec says): ``api_key`` (from ``gridcase apikey
  create``), ``service_code``, ``lat``, ``long``, ``description`` and gridcase's ``crs`` (``wgs84``, the
  default, or ``gcj02``: offset coordinates from a Chinese map SDK, converted to WGS84 as intake's own
  reports are); → ``[{"service_request_id", ...}]``. Numbers are plain ASCII decimals
  (``shared.fields.strict_decimal``: ``lat= 27.8 `` or ``long=1_02.2`` are refused). The report is filed
  as ``open311:<key name>`` through intake's one ``submit_report`` use case, so it is routed, escalated
  and rate-limited as any other; its channel is ``open311``, whose reports wait for staff to accept
  them (立案) unless the policy says otherwise (``[needs_acceptance]``).
- ``GET requests.{json|xml}`` (``service_request_id``, ``service_code``, ``start_date``, ``end_date``,
  ``status``; by default the last 90 days, at most 90 days, 1000 requests) and
  ``GET requests/{id}.{json|xml}``: **public fields only** (no reporter, no client time or accuracy).
  ``status`` is ``open`` or ``closed``; the level and owner are in ``status_notes``, the deadline in
  ``expected_datetime``, the owning unit in ``agency_responsible``. A request refused (不予立案) or voided
  is ``closed`` and its ``status_notes`` say why (``refused: not a city matter: …``); one merged into (or
  linked as a duplicate of) another case follows that case's status, its notes naming it.

XML answers hold only characters XML 1.0 allows (``xml_text``: U+FFFF, U+FFFE and the controls a JSON
body may carry become U+FFFD), so one stored description cannot make a whole listing ill-formed.

Errors follow the spec, not RFC 9457 (its clients parse them): ``[{"code": 400, "description": "..."}]``
with the HTTP status ``code`` (400 bad parameter, 403 bad api_key, 404 unknown service or request).
These routes are outside intake's OpenAPI description (their contract is the GeoReport spec). Access goes
through ``shared.access`` like every endpoint (``open311.read``, ``open311.submit``: public actions; the
key is the credential of a submission).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from xml.etree import ElementTree

from flask import Blueprint, Response, jsonify, request, send_file

from services.intake import handlers
from services.intake.domain.reports import NewReport, UnknownCategory
from services.intake.limits import OverLimit, precheck, refuse
from services.intake.photo_api import PHOTO_HEADERS
from services.intake.store import ENDED_FOR_THE_PUBLIC
from shared.auth import OPEN311_SUBJECT_PREFIX, Identity
from shared.clock import isoformat
from shared.fields import LIMITS, parse_instant, storable_problem, strict_decimal
from shared.gcj02 import gcj02_to_wgs84
from shared.policy import Category, Policy
from shared.vocabulary import Role, Status
from shared.web import authorize, current_service
from shared.words import note_text

blp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FORMATS = ("json", "xml")
MAX_DAYS = 90
MAX_REQUESTS = 1000
#: Statuses Open311 calls ``closed``: a verified fix, and the requests that ended without becoming a case.
CLOSED = set(ENDED_FOR_THE_PUBLIC)
#: Decimals of a sensitive category's published position: 0.001° is 111 m north–south, less east–west.
SENSITIVE_DECIMALS = 3
CRS = ("wgs84", "gcj02")
#: Characters XML 1.0 does not allow (§2.2 Char): C0 controls but tab, LF, CR; surrogates; U+FFFE, U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Open311Error(Exception):
    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code, self.description = code, description


def _zone() -> str:
    """The city's time zone, in which report numbers are dated."""
    return current_service().settings.time_zone


@blp.errorhandler(Open311Error)
def _error(exc: Open311Error):
    return _answer([{"code": exc.code, "description": exc.description}], "errors", "error", exc.code)


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, "the format is json or xml")
    return fmt


def _answer(items: list[dict], root: str, item: str, status: int = 200) -> Response:
    fmt = request.view_args.get("fmt", "json") if request.view_args else "json"
    if fmt != "xml":
        response = jsonify(items)
        response.status_code = status
        return response
    top = ElementTree.Element(root)
    for entry in items:
        node = ElementTree.SubElement(top, item)
        for key, value in entry.items():
            child = ElementTree.SubElement(node, key)
            if isinstance(value, list):
                child.text = xml_text(",".join(str(v) for v in value))
            elif value is not None:
                child.text = xml_text(str(value).lower() if isinstance(value, bool) else str(value))
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(top, encoding="utf-8")
    return Response(body, status=status, mimetype="text/xml")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 does not allow replaced by U+FFFD (the one place XML text is
    made: ``_answer``)."""
    return _NOT_XML.sub("\ufffd", text)


def public_categories(policy: Policy) -> dict[str, Category]:
    """The categories the policy offers to the public (``public = true``), by code."""
    return {code: category for code, category in policy.categories.items() if category.public}


def _service(category: Category, policy: Policy) -> dict:
    klass = policy.describe(category)["class"]
    return {"service_code": category.code, "service_name": category.en, "description": f"{category.zh} {category.en}",
            "metadata": False, "type": "realtime", "keywords": category.code.replace("_", ","),
            "group": klass["en"] if klass else category.group}


@blp.get("/services.<fmt>")
def services(fmt):
    """The services: the policy's public categories, grouped by their class."""
    authorize("open311.read")
    _format(fmt)
    policy = current_service().policy
    return _answer([_service(c, policy) for c in public_categories(policy).values()], "services", "service")


@blp.get("/services/<code>.<fmt>")
def service_definition(code, fmt):
    """A service definition: no attributes beyond the standard fields."""
    authorize("open311.read")
    _format(fmt)
    if code not in public_categories(current_service().policy):
        raise Open311Error(404, f"no service {code[:64]!r}")
    definition = {"service_code": code, "attributes": []}
    if fmt == "xml":
        return _answer([{"service_code": code, "attributes": ""}], "service_definitions", "service_definition")
    return jsonify(definition)


def _number(name: str, low: float, high: float) -> float:
    """A form field that is a plain ASCII decimal within ``[low, high]``; 400 otherwise."""
    text = request.form.get(name)
    if text is None:
        raise Open311Error(400, f"{name} is required")
    try:
        value = strict_decimal(text)
    except ValueError:
        raise Open311Error(400, f"{name} must be a decimal number such as 27.894 (digits, a point and an "
                                "optional minus: no spaces, underscores or +)") from None
    if not low <= value <= high:
        raise Open311Error(400, f"{name} must be between {low:g} and {high:g}")
    return value


@blp.post("/requests.<fmt>")
def create_request(fmt):
    """Create a service request from a form-encoded body with an ``api_key``."""
    authorize("open311.submit")
    _format(fmt)
    service = current_service()
    name = service.run(handlers.api_key_name, request.form.get("api_key", ""))
    if name is None:
        raise Open311Error(403, "a valid api_key is required")
    client = Identity(role=Role.COMMAND, user=f"{OPEN311_SUBJECT_PREFIX}{name}")
    precheck(service.limits, lambda limits: limits.report, client)
    offered = public_categories(service.policy)
    code = request.form.get("service_code", "")
    if code not in offered:
        raise Open311Error(400, f"unknown service_code; one of {', '.join(offered)}")
    description = request.form.get("description", "") or code
    if len(description) > LIMITS["description"] or storable_problem(description, multiline=True):
        raise Open311Error(400, f"description must be text of at most {LIMITS['description']} characters")
    lat, lon = _number("lat", -90, 90), _number("long", -180, 180)
    crs = request.form.get("crs", "wgs84")
    if crs not in CRS:
        raise Open311Error(400, f"crs is {' or '.join(CRS)}")
    if crs == "gcj02":
        lon, lat = gcj02_to_wgs84(lon, lat)
    try:
        submitted = service.run(handlers.submit_report, NewReport(code, description, lon, lat, channel="open311"),
                                client, None)
    except UnknownCategory:
        raise Open311Error(400, f"unknown service_code; one of {', '.join(offered)}") from None
    except OverLimit as exc:
        refuse(exc)
    notice = f"case {submitted.report.number_in(_zone())}"
    return _answer([{"service_request_id": submitted.report.id, "service_notice": notice, "account_id": None}],
                   "service_requests", "request", 201)


def _public(report, photo_id: str | None, policy: Policy) -> dict:
    """The public fields of a report (no reporter, no phone details); a sensitive category's position
    rounded and its photo left out."""
    category = policy.categories.get(report.category)
    sensitive = category is None or category.sensitive
    closed = report.status in CLOSED
    notes = f"{report.status}" + (f", level {int(report.level)} ({report.owner_area_name or report.owner_area_id})"
                                  if report.level and report.status not in CLOSED - {Status.CLOSED} else "")
    if report.status_note:  # English, as the spec's answers are (a stored code rendered: shared.words)
        why = note_text(report.status_note)
        notes = f"{why}; {notes}" if report.duplicate_of else f"{notes}: {why}"
    elif report.duplicate_of:
        notes += ", a duplicate of an open case nearby"
    lat, lon = report.lat, report.lon
    if sensitive and lat is not None:
        lat, lon = round(lat, SENSITIVE_DECIMALS), round(lon, SENSITIVE_DECIMALS)
    media = f"{request.url_root.rstrip('/')}{blp.url_prefix}/media/{photo_id}" if photo_id and not sensitive else None
    return {"service_request_id": report.id, "status": "closed" if closed else "open", "status_notes": notes,
            "service_name": category.en if category else report.category, "service_code": report.category,
            "description": report.description, "agency_responsible": report.owner_area_name or report.owner_area_id,
            "service_notice": f"case {report.number_in(_zone())}", "requested_datetime": isoformat(report.reported_at),
            "updated_datetime": isoformat(report.updated_at),
            "expected_datetime": isoformat(report.deadline_at) if report.deadline_at else None,
            "address": None, "address_id": None, "zipcode": None, "lat": lat, "long": lon, "media_url": media}


def _query(policy: Policy, **filters) -> handlers.PublicQuery:
    """The public bounds (public categories, Open311 clients' reports) with ``filters``."""
    return handlers.PublicQuery(categories=tuple(public_categories(policy)), reporter_prefix=OPEN311_SUBJECT_PREFIX,
                                **filters)


def _time(name: str) -> datetime | None:
    text = request.args.get(name)
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise Open311Error(400, f"{name} must be a W3C date-time such as 2026-01-05T00:00:00Z: {exc}") from None


def _codes(name: str) -> list[str]:
    return [part for part in request.args.get(name, "").split(",") if part]


@blp.get("/requests.<fmt>")
def list_requests(fmt):
    """Service requests, newest first, by the spec's filters (public fields only)."""
    authorize("open311.read")
    _format(fmt)
    service = current_service()
    ids = _codes("service_request_id")
    statuses = _codes("status")
    if any(s not in ("open", "closed") for s in statuses):
        raise Open311Error(400, "status is open or closed")
    end, start = _time("end_date"), _time("start_date")
    if not ids:
        end = end or service.clock.now() + timedelta(minutes=1)
        start = start or end - timedelta(days=MAX_DAYS)
        if end - start > timedelta(days=MAX_DAYS):
            raise Open311Error(400, f"start_date and end_date may span at most {MAX_DAYS} days")
    found = service.run(handlers.public_reports, _query(
        service.policy, ids=tuple(ids[:MAX_REQUESTS]), codes=tuple(_codes("service_code")), start=start, end=end,
        closed=None if len(set(statuses)) != 1 else statuses[0] == "closed", limit=MAX_REQUESTS))
    return _answer([_public(r, photo, service.policy) for r, photo in found], "service_requests", "request")


@blp.get("/requests/<request_id>.<fmt>")
def one_request(request_id, fmt):
    """One service request (public fields only)."""
    authorize("open311.read")
    _format(fmt)
    service = current_service()
    found = service.run(handlers.public_reports, _query(service.policy, ids=(request_id[:64],), limit=1))
    if not found:
        raise Open311Error(404, "no such service request")
    return _answer([_public(*found[0], service.policy)], "service_requests", "request")


@blp.get("/media/<photo_id>")
def media(photo_id):
    """A public request's photo (its ``media_url``): the stored, cleaned image; 404 for a photo of a report
    that is not public, or of a sensitive category."""
    authorize("open311.read")
    service = current_service()
    try:
        report, row = service.run(handlers.public_photo, _query(service.policy), photo_id[:64])
    except LookupError:
        raise Open311Error(404, "no such media") from None
    category = service.policy.categories.get(report.category)
    if category is None or category.sensitive:
        raise Open311Error(404, "no such media")
    response = send_file(service.dependencies["photo_files"].path(row["stored_name"]), mimetype=row["content_type"],
                         conditional=False, etag=False, max_age=0)
    response.headers.extend(PHOTO_HEADERS)
    return response
