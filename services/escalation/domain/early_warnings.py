"""Early warning (预警), decided in plain Python: which reports make a cluster or a recurring problem,
and the life of an early-warning item (open → acknowledged → closed).

**Where a report lies.** Each rule keeps the recent reports it watches as points under a coarse key, so
that a new report reads only its neighbourhood, never every stored report: for a ``cluster`` rule the key
is a cell of a square grid on the sphere whose sides are the rule's radius (``cell``), and the reports
within the radius of a point all lie in the cells ``cells_near`` lists (at most 3 × 3); for a
``recurring`` rule the key is the report's grid (网格) id. Rows of cells are ``radius_m`` tall; each row's
cells are at least ``radius_m`` wide at its pole-ward edge (wider towards the equator). Distances are on
the sphere of the mean Earth radius (haversine: within 0.5 % of the ellipsoid, far less than a phone's
fix). The grid does not wrap at ±180° longitude (no city straddles the antimeridian here).

**A cluster** (``cluster``): at least ``min_reports`` reports of one category within ``radius_m`` metres
of the newest of them, all within one ``window`` (the new report included). **A recurring problem**
(``recurring``): at least ``min_reports`` reports or reopenings of one category in one grid within one
``window``. **Joining**: a report within the radius of a report of an item that is still open or
acknowledged (a recurring rule: in its grid) joins that item — the nearest one — whatever its age, rather
than raising another; the reports of a closed item never count again. Where the rule is evaluated and how
concurrent workers are kept from raising one cluster twice: ``services/escalation/early_warnings.py``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.escalation.domain.errors import InvalidArgument, InvalidTransition, required_text
from shared.clock import isoformat
from shared.owners import Owners
from shared.words import word

#: The mean Earth radius (IUGG), metres; one degree of latitude on that sphere, metres.
EARTH_RADIUS_M = 6_371_008.8
DEGREE_M = EARTH_RADIUS_M * math.pi / 180
#: The latitude beyond which cells stop narrowing (a city near a pole would need another index).
MAX_LATITUDE = 85.0
STATUSES = ("open", "acknowledged", "closed")
#: The statuses in which an item takes new reports.
ACTIVE = ("open", "acknowledged")
ACTIONS = {"acknowledge": ("open",), "close": ("open", "acknowledged")}


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The great-circle distance in metres between two WGS84 points (degrees), on the mean-radius sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _row(lat: float, size_m: float) -> int:
    return math.floor(lat * DEGREE_M / size_m)


def _column_metres(row: int, size_m: float) -> float:
    """Metres per degree of longitude at the pole-ward edge of ``row`` (the row's narrowest)."""
    edge = max(abs(row * size_m / DEGREE_M), abs((row + 1) * size_m / DEGREE_M))
    return DEGREE_M * math.cos(math.radians(min(edge, MAX_LATITUDE)))


def cell(lon: float, lat: float, size_m: float) -> str:
    """The key of the cell holding a point (degrees) in a grid of cells ``size_m`` metres across: ``"row:col"``."""
    row = _row(lat, size_m)
    return f"{row}:{math.floor(lon * _column_metres(row, size_m) / size_m)}"


def cells_near(lon: float, lat: float, radius_m: float, size_m: float) -> list[str]:
    """The keys of every cell that may hold a point within ``radius_m`` metres of (``lon``, ``lat``):
    3 × 3 cells or fewer when ``size_m`` ≥ ``radius_m``."""
    dlat = radius_m / DEGREE_M
    widest = min(abs(lat) + dlat, MAX_LATITUDE)
    dlon = radius_m / (DEGREE_M * math.cos(math.radians(widest))) * 1.000001
    keys = []
    for row in range(_row(lat - dlat, size_m), _row(lat + dlat, size_m) + 1):
        scale = _column_metres(row, size_m) / size_m
        west, east = math.floor((lon - dlon) * scale), math.floor((lon + dlon) * scale)
        keys += [f"{row}:{col}" for col in range(west, east + 1)]
    return keys


@dataclass(eq=False)
class Point:
    """A report (or a reopening) a rule watches: its case, when (UTC), where (degrees; None for a
    recurring rule's reopening), the item it went into (``held`` while that item is open or
    acknowledged), its stored ``id`` (None until stored) and its neighbourhood key ``cell``. Points are
    compared by identity: a batch changes them in place and stores what changed."""

    case_id: str
    at: datetime
    lon: float | None = None
    lat: float | None = None
    item_id: str | None = None
    held: bool = False
    id: int | None = None
    cell: str | None = None

    def join(self, item_id: str) -> None:
        """The point goes into the active item ``item_id``."""
        self.item_id, self.held = item_id, True


@dataclass(frozen=True)
class Decision:
    """What a new point does: join the active item ``join``, or open an item of ``members`` (the new
    point among them), or nothing (both empty)."""

    join: str | None = None
    members: tuple[Point, ...] = ()


def in_one_window(points: Iterable[Point], at: datetime, window: timedelta) -> tuple[Point, ...]:
    """The most points that fit in one window of length ``window`` that contains ``at`` (the earliest
    such window on a tie), oldest first."""
    ordered = sorted((p for p in points if abs(p.at - at) <= window), key=lambda p: (p.at, p.case_id))
    best: tuple[Point, ...] = ()
    end = 0
    for start, first in enumerate(ordered):
        if first.at > at:
            break
        end = max(end, start)
        while end < len(ordered) and ordered[end].at <= first.at + window:
            end += 1
        if first.at + window >= at and end - start > len(best):
            best = tuple(ordered[start:end])
    return best


def decide(kind: str, new: Point, others: Sequence[Point], *, window: timedelta, min_reports: int,
           radius_m: float | None = None) -> Decision:
    """The rule's decision for ``new`` given the other points stored under its neighbourhood key(s)
    (``others``: active items' points of any age, free points of about the window). A cluster rule keeps
    those within ``radius_m`` of ``new``; a recurring rule all of them (they share its grid). Points
    of closed items (``item_id`` set, not ``held``) never count."""
    others = list(others)
    if kind == "cluster":
        others = [p for p in others if p.lon is not None and p.lat is not None
                  and distance_m(new.lon, new.lat, p.lon, p.lat) <= radius_m]
    active = [p for p in others if p.held]
    if active:
        nearest = min(active, key=lambda p: (distance_m(new.lon, new.lat, p.lon, p.lat)
                                             if kind == "cluster" else 0.0, p.at))
        return Decision(join=nearest.item_id)
    members = in_one_window([p for p in others if p.item_id is None] + [new], new.at, window)
    return Decision(members=members) if len(members) >= min_reports else Decision()


def centre(points: Iterable[Point]) -> tuple[float | None, float | None]:
    """The mean position of the located points (degrees), or (None, None) when none is located."""
    located = [(p.lon, p.lat) for p in points if p.lon is not None and p.lat is not None]
    if not located:
        return None, None
    return sum(x for x, _ in located) / len(located), sum(y for _, y in located) / len(located)


@dataclass
class Item:
    """An early-warning item: the rule that raised it, its category, the area of the report that
    raised it (``area_id``: its grid, or the lowest area that owns it; ``owners``: all its owners), the
    cases in it (ids, oldest first), a status and its history (``{"at": ISO 8601 UTC, "action": opened |
    acknowledged | closed, "actor", "note"}``)."""

    id: str
    rule: str
    kind: str
    category: str
    area_id: str
    owners: Owners
    reports: list[str]
    opened_at: datetime
    status: str = "open"
    lon: float | None = None
    lat: float | None = None
    radius_m: float | None = None
    updated_at: datetime | None = None
    history: list[dict] = field(default_factory=list)

    def act(self, action: str, actor: str, now: datetime, note: object) -> dict:
        """``acknowledge`` (an open item) or ``close`` (an open or acknowledged one), with a note; returns
        the history entry. ``InvalidArgument`` naming ``action`` or ``note``, ``InvalidTransition`` (409)
        when the item's status does not allow it; the item is unchanged on a refusal."""
        allowed = ACTIONS.get(action)
        if allowed is None:
            raise InvalidArgument("case.unknown_action", field="action", action=action, choices=", ".join(ACTIONS))
        if self.status not in allowed:
            raise InvalidTransition("warning.wrong_status", status=word("warning", self.status), action=action,
                                    allowed=" or ".join(allowed))
        text = required_text(note, "a note", "note")
        self.status = {"acknowledge": "acknowledged", "close": "closed"}[action]
        self.updated_at = now
        entry = {"at": isoformat(now), "action": self.status, "actor": actor, "note": text}
        self.history.append(entry)
        return entry

    def take(self, points: Sequence[Point], now: datetime) -> list[str]:
        """Add the cases of ``points`` that are not in the item yet (a reopened case is in it once);
        returns their ids."""
        added = list(dict.fromkeys(p.case_id for p in points if p.case_id not in self.reports))
        self.reports += added
        self.updated_at = now
        return added


def opened_item(item_id: str, rule, category: str, owners: Owners, members: Sequence[Point], now: datetime) -> Item:
    """A new item of ``rule`` (a ``shared.policy.EarlyWarningRule``) for ``members`` (the new point
    among them, last in time), in the area of the newest member's owners."""
    lon, lat = centre(members)
    area = owners.at(owners.owned_level())
    item = Item(item_id, rule.name, rule.kind, category, area.id if area else "", owners, [], now, "open", lon, lat,
                rule.radius_m, now, [{"at": isoformat(now), "action": "opened", "actor": "system", "note": ""}])
    item.take(members, now)
    return item

