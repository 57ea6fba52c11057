"""The board's first screen over HTTP, on escalation's blueprint: every open case of the caller's area in one
scoped query, with only the columns the board's list, filters and map read, as rows of values."""
from __future__ import annotations

import json
from datetime import datetime

from flask.views import MethodView
from marshmallow import RAISE, Schema, fields, validate

from services.escalation import handlers
from services.escalation.api import Statuses, blp
from services.escalation.domain.deadlines import is_late
from services.escalation.domain.departments import ACTIVE
from shared.clock import isoformat
from shared.fields import QueryInteger
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
        lists, so 10⁴ open cases are one request (about 3 MB of JSON). ``last_event_id`` is the live feed's
        position read just before the rows: the feed resumed from it (``Last-Event-ID``) misses nothing.

        A row's values, by column: ``owner`` the id of the area holding the case at its level, ``grid``,
        ``station``, ``subcenter``, ``hq`` the owners' ids (null where a level has none; their names are
        in ``names``); ``next_warning`` and ``reported_at`` ISO 8601 UTC or null; ``time_left`` seconds
        from ``as_of`` to the deadline (negative: late) or null; ``revision`` the case's (its ETag's)
        number, which grows with every change; ``overdue``
        as in the case (flagged, or past the deadline); ``warned`` the highest warning threshold reached
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
        with service.uow() as uow:
            last_event_id = uow.store.last_step_id()  # first: a step committed after it is replayed by the feed
            found, total = uow.store.board_rows(caller, args["status"], args["limit"])
        names: dict[str, str] = {}
        parsed: dict[str, list] = {}
        rows = [_row(r, now, names, parsed) for r in found]
        return {"columns": list(COLUMNS), "rows": rows, "names": names, "total": total, "as_of": isoformat(now),
                "last_event_id": last_event_id}


def _row(r, now, names: dict, parsed: dict) -> list:
    """One case's values in ``COLUMNS`` order, from ``CaseStore.board_rows``' columns; the owners' names
    are added to ``names``; ``parsed`` keeps each owners' JSON text already read (many cases share one)."""
    ids = parsed.get(r.areas)
    if ids is None:
        areas = (json.loads(r.areas) if r.areas else None) or {}
        ids = parsed[r.areas] = [ref["id"] if (ref := areas.get(name)) else None for name in OWNER_COLUMNS]
        for ref in areas.values():
            if ref:
                names.setdefault(ref["id"], ref.get("name", ref["id"]))
    parts = []
    late_part = False
    for a in (json.loads(r.assignments) if r.assignments else None) or ():  # JSON null when none
        deadline = datetime.fromisoformat(a["deadline"]) if a.get("deadline") else None
        active = a.get("status") in ACTIVE
        overdue = active and (bool(a.get("overdue")) or (deadline is not None and is_late(deadline, now)))
        late_part = late_part or overdue
        parts.append({"id": a["department"], "role": a["role"], "status": a["status"],
                      "deadline": isoformat(deadline) if deadline else None, "overdue": overdue})
    urges = (json.loads(r.urges) if r.urges else None) or ()
    deadline = r.deadline_at
    return [r.id, r.number, r.category, r.severity, r.status, r.level, r.owner_area_id, *ids,
            (deadline - now).total_seconds() if deadline else None,
            r.overdue or (deadline is not None and is_late(deadline, now)), r.warned,
            isoformat(r.next_warning_at) if r.next_warning_at and deadline else None, r.triage,
            r.assignee if r.assignee and r.assignee_unit == r.owner_area_id else None,
            isoformat(r.reported_at) if r.reported_at else None, r.lon, r.lat,
            parts, late_part, len(urges), any(u.get("answered_at") is None for u in urges), r.revision]
