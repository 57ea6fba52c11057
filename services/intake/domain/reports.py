"""A grid worker's report of an incident, and what intake knows of its case afterwards."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.owners import NO_OWNERS, Owners
from shared.vocabulary import Level, Role, Status
from shared.words import Problem, word


class IdempotencyConflict(Problem):
    """The same Idempotency-Key was used before with a different report (422); ``existing``: its id."""

    status, code = 422, "report.key_conflict"

    def __init__(self, existing: str):
        super().__init__(field="Idempotency-Key")
        self.existing = existing


class UnknownCategory(Problem, ValueError):
    """A category not in the policy (422); ``choices``: the policy's, comma-separated."""

    status, code = 422, "report.unknown_category"

    def __init__(self, category: str, choices: str = ""):
        super().__init__(field="category", choices=choices)
        self.category = category


class UnknownSeverity(Problem, ValueError):
    """A severity the policy has no rules for (422); ``choices``: the policy's, comma-separated."""

    status, code = 422, "report.unknown_severity"

    def __init__(self, severity: str, choices: str = ""):
        super().__init__(field="severity", choices=choices)
        self.severity = severity


#: What a photo shows: the incident as reported (``before``, the default), the fix (``after``, with a
#: resolution or a department's feedback) or the on-site check (``verification``).
PHOTO_KINDS = ("before", "after", "verification")


class NotItsGridWorker(Problem):
    """The caller sees the case but is not the one who verifies it on site (``verifier_of``; 403)."""

    status, code = 403, "verification.not_verifier"

    def __init__(self, case_id: str):
        super().__init__()
        self.case_id = case_id


class NotAwaitingVerification(Problem):
    """The case is not waiting for a verification (not resolved, or already verified; 409)."""

    status, code = 409, "verification.not_awaiting"

    def __init__(self, status: str):
        super().__init__(status=word("status", status))


class AlreadyVerified(NotAwaitingVerification):
    """A verification of this round was sent first (by another request, another process): the first wins."""

    code = "verification.already_sent"

    def __init__(self, case_id: str):
        Problem.__init__(self)
        self.case_id = case_id


class LocationRequired(Problem, ValueError):
    """Only a grid worker may file without a usable location (it then goes to their own grid; 422)."""

    status, code = 422, "report.location_required"

    def __init__(self, why: str | None = None):
        super().__init__(field="location")
        self.why = why


def unusable_fix(lon: float | None, lat: float | None, accuracy_m: float | None, limit_m: float) -> str | None:
    """Why a phone's position cannot be trusted to route a case, or None when it can: no position,
    exactly ``0,0`` (what phones send without a GPS fix: in the Gulf of Guinea, never in a city), or an
    accuracy radius (metres) worse than ``limit_m`` (``Settings.location_accuracy_limit_m``)."""
    if lon is None or lat is None:
        return "no location"
    if lon == 0 and lat == 0:
        return "0,0: no GPS fix"
    if accuracy_m is not None and accuracy_m > limit_m:
        return f"accuracy {accuracy_m:g} m is worse than {limit_m:g} m"
    return None


EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (haversine; under 0.5 % off at city scale)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def degrees_around(lat: float, radius_m: float) -> tuple[float, float]:
    """(Δlon, Δlat) in degrees covering ``radius_m`` around latitude ``lat``: a bounding box for an index."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    return dlat / max(math.cos(math.radians(lat)), 0.01), dlat


def nearest_duplicate(lon: float, lat: float, candidates, radius_m: float):
    """The nearest of ``candidates`` (objects with ``lon``, ``lat``) within ``radius_m`` metres, or None."""
    best = min(((distance_m(lon, lat, c.lon, c.lat), c) for c in candidates), default=None, key=lambda p: p[0])
    return best[1] if best and best[0] <= radius_m else None


@dataclass(frozen=True)
class NewReport:
    """What a reporter sends (the command): ``lon``/``lat`` in degrees, WGS84 (already converted from
    GCJ-02 at the edge), None when the phone had no position; ``accuracy_m`` the phone's accuracy
    radius in metres; ``client_time`` the phone's own clock when the report was written (kept apart
    from the server's ``reported_at``: phones' clocks drift, and a report may be sent hours later)."""
    category: str
    description: str
    lon: float | None
    lat: float | None
    accuracy_m: float | None = None
    client_time: datetime | None = None
    severity: str | None = None  # proposed by the reporter; None: the category's default
    #: where it came from (``shared.policy.CHANNELS``) when the door says (Open311); None: the reporter's
    #: role says (``channel_of``)
    channel: str | None = None

    def fingerprint(self) -> str:
        """What makes two submissions "the same report" for an idempotent retry (a report without a
        proposed severity or a named channel hashes as it did before either existed)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # flat: no deep copy (asdict) needed
        values = {k: v for k, v in values.items() if v is not None or k not in ("severity", "channel")}
        return hashlib.sha256(_CANONICAL.encode(values).encode()).hexdigest()


#: The fingerprint's JSON (keys sorted, compact, times in ISO 8601), one encoder for every report: the
#: text, and so every stored fingerprint, is what ``json.dumps`` with the same arguments writes.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                              default=lambda value: value.isoformat())


@dataclass(frozen=True)
class Report:
    """A stored report. ``status``, ``level`` and ``owner_area_id`` follow the case as the other
    services move it (intake hears of it through their events)."""
    id: str
    seq: int
    reporter: str
    idempotency_key: str | None
    fingerprint: str
    category: str
    severity: str
    description: str
    lon: float | None
    lat: float | None
    status: Status
    reported_at: datetime
    updated_at: datetime
    accuracy_m: float | None = None
    client_time: datetime | None = None
    #: no usable position (``unusable_fix``): routed to the reporting grid worker's own grid
    location_unverified: bool = False
    level: Level | None = None
    owner_area_id: str | None = None
    owner_area_name: str | None = None
    deadline_at: datetime | None = None
    #: the report this one repeats (same category, nearby, while that case is open): it opens no case
    duplicate_of: str | None = None
    #: the case's area scope: its owners below headquarters, known by id (none before dispatch)
    owners: Owners = NO_OWNERS
    channel: str | None = None  # grid_worker, staff or open311 (``shared.policy.CHANNELS``)
    #: why the report ended without a fix (refused with its reason, voided, merged into another case)
    status_note: str | None = None
    verifier_level: Level | None = None  # who checks the fix on site (from case.resolved)
    resolved_by: str | None = None  # who made the fix (never its verifier)
    #: when the verification of the current round was sent to escalation (None: none yet); cleared when
    #: the case leaves verification or changes owners
    verification_sent_at: datetime | None = None
    photo_count: int = 0  # photos stored for the report
    #: the newest of escalation's events applied to the report: the case revision and the step's place in it
    #: (``events.revision_key``); None before the first
    case_revision: int | None = None
    case_revision_step: int | None = None

    def number_in(self, time_zone: str) -> str:
        """The report's number, dated in the city's time zone (``Settings.time_zone``)."""
        return report_number(self.seq, self.reported_at, time_zone)


def channel_of(role: str) -> str:
    """The channel of a report filed with a token of ``role``: a grid worker's phone, or staff (Open311
    names its own channel)."""
    return "grid_worker" if role == Role.GRID_WORKER else "staff"


def verifier_of(report: Report) -> tuple[Level, str | None]:
    """Who checks the fix of a case awaiting verification on site: (the level, that level's area id),
    as escalation said when the case was resolved (``verifier_level``: the grid worker of the grid,
    or the station when the grid worker fixed it on the spot or the case is in no grid); before
    escalation said, the grid worker of the grid, or the station of a case in no grid."""
    level = report.verifier_level or (Level.GRID if report.owners.grid is not None else Level.STATION)
    ref = report.owners.at(level) if level < Level.HQ else None
    return level, ref.id if ref is not None else None


def report_number(seq: int, reported_at: datetime, time_zone: str) -> str:
    """The number people read out on the phone: the report's date in the city's time zone
    (``time_zone``, IANA; a report at 02:30 on 1 December in UTC+8 is dated 1 December)
    and a running sequence: ``20261201-000042``. ``reported_at`` is an aware UTC instant."""
    return f"{reported_at.astimezone(ZoneInfo(time_zone)):%Y%m%d}-{seq:06d}"
