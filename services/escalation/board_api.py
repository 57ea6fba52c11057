"""The board's first screen over HTTP, on escalation's blueprint: every open case of the caller's area in one
scoped query, with only the columns the board's list, filters and map read, as rows of values."""
from __future__ import annotations

import json
from datetime import datetime

import orjson
from flask import Response
from flask.views import MethodView
from marshmallow import RAISE, Schema, fields, validate

from services.escalation import handlers
from services.escalation.api import Statuses, blp
from services.escalation.domain.deadlines import is_late
from services.escalation.domain.departments import ACTIVE
from shared.clock import isoformat
from shared.fields import QueryInteger
from shared.runtime import collector_paused
from shared.vocabulary import Status
from shared.web import access, current_service, identity

#: What the board shows by default: every status but the endings.
OPEN = [s.value for s in Status if s not in (Status.REPORTED, Status.CLOSED, Status.REFUSED, Status.VOIDED,
                                              Status.MERGED)]
#: The owners' columns of a row, in order: each level's area id.
OWNER_COLUMNS = ("grid", "station", "subcenter", "hq")
#: The columns of a row, in order (``GET /escalation/v1/cases/rows``).
COLUMNS = ("id", "number", "category", "severity", "status", "level", "owner", *OWNER_COLUMNS,
           "time_left", "overdue", "warned", "next_warning", "triage", "assignee", "reported_at", "lon", "lat",
           "departments", "department_overdue", "urges", "urge_open", "revision")


class BoardRowsArgs(Schema):
    class Meta:
        unknown = RAISE

    status = Statuses(load_default=OPEN, metadata={
        "description": "one status or several, comma-separated (default: every status but the endings)"})
    limit = QueryInteger(load_default=20_000, validate=validate.Range(1, 50_000),
                         metadata={"description": "at most this many rows, the least time left first"})


class BoardRowsOut(Schema):
    columns = fields.List(fields.String(), metadata={"description": "the name of each value of a row"})
    rows = fields.List(fields.Raw(), metadata={"description": "one list of values per case, in `columns` order"})
    names = fields.Dict(metadata={"description": "area id → name, for every area a row names"})
    total = fields.Integer(metadata={"description": "how many cases match (more than the rows when over limit)"})
    as_of = fields.String(metadata={"description": "ISO 8601 UTC: the server's now, which time_left counts from"})
    last_event_id = fields.Integer(metadata={
        "description": "the live feed's position read before the rows: GET …/cases/events with this "
                       "Last-Event-ID replays every change since, so the list needs no wait for the feed"})


@blp.route("/cases/rows")
class BoardRows(MethodView):
    @access("case.list")
    @blp.arguments(BoardRowsArgs, location="query")
    @blp.response(200, BoardRowsOut)
    def get(self, args):
        """The cases of the caller's area (``case.list``'s scope) in the given statuses, the least time
        left first (no deadline last), as ``{"columns": [...], "rows": [[...], ...], "names": {area id:
        name}, "total", "as_of", "last_event_id"}``: one scoped query reading only the columns the board
        lists, so 10⁴ open cases are one request. ``last_event_id`` is the live feed's
        position read just before the rows: the feed resumed from it (``Last-Event-ID``) misses nothing.

        A row's values, by column: ``owner`` the id of the area holding the case at its level, ``grid``,
        ``station``, ``subcenter``, ``hq`` the owners' ids (null where a level has none; their names are
        in ``names``); ``next_warning`` and ``reported_at`` ISO 8601 UTC (milliseconds) or null;
        ``time_left`` seconds from ``as_of`` to the deadline, to the millisecond (negative: late) or null;
        ``revision`` the case's (its ETag's) number, which grows with every change; ``overdue`` as in the
        case (flagged, or past the deadline, from its very instant on); ``warned`` the highest warning threshold reached
        at the current level (0.5, 0.8) or null; ``lon`` and ``lat`` degrees WGS84 or null; ``assignee``
        the named handler (承办人) of the unit holding the case now, or null; ``departments`` ``[{"id",
        "role", "status", "deadline", "overdue"}]``; ``department_overdue`` an active department late;
        ``urges`` how many urges (督办) are on record and ``urge_open`` whether one waits for its answer.
        Errors: ``422`` naming ``status`` or ``limit``
        (or an unknown parameter); ``401`` / ``403`` as every list.
        """
        caller = identity()
        service = current_service()
        now = service.clock.now()
        service.run(handlers.remember_person, caller)
        with collector_paused():  # 10⁴ rows are some 10⁵ small containers, none in a cycle
            with service.uow() as uow:
                last_event_id = uow.store.last_step_id()  # first: a step committed after it is replayed by the feed
                found, total = uow.store.board_rows(caller, args["status"], args["limit"], now)
            rows, names = _rows(found, now)
        body = {"as_of": isoformat(now), "columns": list(COLUMNS), "last_event_id": last_event_id, "names": names,
                "rows": rows, "total": total}
        # orjson, not the schema's dump and Flask's encoder: 10⁴ rows are encoded in a tenth of the time
        return Response(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), mimetype="application/json")


def _rows(found: list[tuple], now: datetime) -> tuple[list[list], dict[str, str]]:
    """The answer's rows in ``COLUMNS`` order from ``CaseStore.board_rows``' tuples, and the owners' names
    (area id → name). Each JSON text is parsed once per distinct text (many cases share their owners,
    most have no departments and no urges): its values are kept by the text."""
    names: dict[str, str] = {}
    owners: dict[str | None, list] = {}
    parts: dict[str | None, tuple[list, bool]] = {}
    urged: dict[str | None, tuple[int, bool]] = {}
    rows = []
    for (id_, number, category, severity, status, level, owner, areas, time_left, late, warned, next_warning,
         triage, assignee, reported_at, lon, lat, assignments, urges, revision) in found:
        ids = owners.get(areas)
        if ids is None:
            ids = owners[areas] = _owner_ids(areas, names)
        departments = parts.get(assignments)
        if departments is None:
            departments = parts[assignments] = _departments(assignments, now)
        urge = urged.get(urges)
        if urge is None:
            listed = (json.loads(urges) if urges else None) or ()  # JSON null when none
            urge = urged[urges] = (len(listed), any(u.get("answered_at") is None for u in listed))
        rows.append([id_, number, category, severity, status, level, owner, *ids, time_left, late, warned,
                     next_warning, triage, assignee, reported_at, lon, lat, departments[0], departments[1],
                     urge[0], urge[1], revision])
    return rows, names


def _owner_ids(text: str | None, names: dict) -> list:
    """The owners' ids in ``OWNER_COLUMNS`` order (None where a level has none) from a case's ``areas``
    JSON text; their names are added to ``names``."""
    areas = (json.loads(text) if text else None) or {}
    for ref in areas.values():
        if ref:
            names.setdefault(ref["id"], ref.get("name", ref["id"]))
    return [ref["id"] if (ref := areas.get(name)) else None for name in OWNER_COLUMNS]


def _departments(text: str | None, now: datetime) -> tuple[list[dict], bool]:
    """A case's departments as the row lists them (``[{"id", "role", "status", "deadline", "overdue"}]``)
    from its ``assignments`` JSON text, and whether an active one is late at ``now``."""
    listed = []
    late_part = False
    for a in (json.loads(text) if text else None) or ():  # JSON null when none
        deadline = datetime.fromisoformat(a["deadline"]) if a.get("deadline") else None
        active = a.get("status") in ACTIVE
        overdue = active and (bool(a.get("overdue")) or (deadline is not None and is_late(deadline, now)))
        late_part = late_part or overdue
        listed.append({"id": a["department"], "role": a["role"], "status": a["status"],
                       "deadline": isoformat(deadline) if deadline else None, "overdue": overdue})
    return listed, late_part
