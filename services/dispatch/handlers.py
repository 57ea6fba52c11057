"""Dispatch's use cases: route a reported case, import and activate area versions, transfer a case."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from services.dispatch import store
from services.dispatch.areaindex import AreaIndex
from services.dispatch.domain.areas import LEVELS, Hierarchy
from services.dispatch.domain.locate import AreaRef, Location, Locator
from services.dispatch.domain.routing import route
from shared import outbox
from shared.clock import Clock
from shared.consumer import Delivery
from shared.messages import Envelope, make_message
from shared.policy import Policy


def dispatch_cases(db: sa.Connection, deliveries: list[Delivery], *, areas: AreaIndex, policy: Policy,
                   clock: Clock) -> None:
    """``case.reported`` → find the owners → record them → ``case.dispatched``, for a batch at once."""
    active = areas.version(store.active_version(db, share_lock=True), db)
    payloads = [d.payload for d in deliveries]
    located = active.locator.locate_many([p["location"]["lon"] for p in payloads],
                                         [p["location"]["lat"] for p in payloads])
    now = clock.now()
    rows, messages = [], []
    for delivery, payload, location in zip(deliveries, payloads, located, strict=True):
        category = policy.categories.get(payload["category"])
        location, level = route(location or _outside_city(active.hierarchy), active.locator,
                                category_start=category.start_level if category else "grid",
                                unit=category.unit if category else None)
        lon, lat = payload["location"]["lon"], payload["location"]["lat"]
        rows.append({"case_id": payload["case_id"], "number": payload["number"], "category": payload["category"],
                     "lon": lon, "lat": lat, "version": active.version, "start_level": level,
                     "triage": location.triage, "candidates": [vars(c) for c in location.candidates],
                     "dispatched_at": now, **_ids(location)})
        messages.append(make_message("case.dispatched", {
            "case_id": payload["case_id"], "number": payload["number"], "category": payload["category"],
            "severity": payload["severity"], "reported_at": payload["reported_at"],
            "areas_version": active.version, "start_level": level, **_refs(location), "triage": location.triage,
            "candidates": [{"id": c.id, "distance_m": c.distance_m} for c in location.candidates],
        }, occurred_at=now, producer="dispatch", correlation_id=delivery.envelope.correlation_id))
    db.execute(store.dispatches.insert(), rows)
    outbox.add(db, *messages)


def close_case(db: sa.Connection, envelope: Envelope, payload: dict, *, clock: Clock) -> None:
    """``case.closed`` → a new area version no longer moves this case."""
    db.execute(store.dispatches.update().where(store.dispatches.c.case_id == payload["case_id"])
               .values(closed_at=clock.now()))


def _outside_city(hierarchy: Hierarchy) -> Location:
    """A reported case is never dropped: a point outside the city goes to headquarters for triage."""
    hq = hierarchy.level("hq")[0]
    return Location(grid=None, station=None, subcenter=None, hq=AreaRef(hq.id, hq.name), triage=True,
                    candidates=())


# -- area versions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    case_id: str
    number: str
    before: dict[str, str | None]
    after: dict[str, str | None]

    def to_dict(self) -> dict:
        return {"case_id": self.case_id, "number": self.number, "from": self.before, "to": self.after}


@dataclass(frozen=True)
class ImportResult:
    version: int | None
    findings: list
    moves: list[Move]


def import_areas(engine: sa.Engine, levels: dict[str, dict], *, source: str, activate: bool, clock: Clock,
                 policy: Policy | None = None, repair: bool = False, progress=None) -> ImportResult:
    """Validate and store a new version of the hierarchy; an import with any error changes nothing.

    Activating it publishes ``areas.published`` and re-routes the open cases whose owner changed.
    """
    from services.dispatch.domain.geojson import build_hierarchy

    hierarchy, findings = build_hierarchy(levels, repair=repair, progress=progress)
    if hierarchy is None:
        return ImportResult(None, findings, [])
    summary = {level: len(hierarchy.level(level)) for level in LEVELS}
    summary["warnings"] = len(findings)
    moves: list[Move] = []
    with engine.begin() as db:
        version = store.save_hierarchy(db, hierarchy, source=source, summary=summary, now=clock.now())
        if activate:
            moves = activate_version(db, version, hierarchy, clock=clock, policy=policy)
    return ImportResult(version, findings, moves)


def activate_version(db: sa.Connection, version: int, hierarchy: Hierarchy, *, clock: Clock,
                     policy: Policy | None = None) -> list[Move]:
    now = clock.now()
    store.activate(db, version, now)
    outbox.add(db, make_message("areas.published", {
        "version": version,
        "areas": [{"id": a.id, "name": a.name, "level": a.level, "parent": a.parent} for a in hierarchy],
    }, occurred_at=now, producer="dispatch"))
    return reroute_open_cases(db, version, hierarchy, clock=clock, policy=policy)


def reroute_open_cases(db: sa.Connection, version: int, hierarchy: Hierarchy, *, clock: Clock,
                       policy: Policy | None = None) -> list[Move]:
    """Locate every open case again under ``version``; move those whose owners changed."""
    rows = store.open_dispatches(db)
    if not rows:
        return []
    locator = Locator(hierarchy)
    located = locator.locate_many([r.lon for r in rows], [r.lat for r in rows])
    moves = []
    now = clock.now()
    for row, location in zip(rows, located, strict=True):
        category = policy.categories.get(row.category) if policy else None
        location, _level = route(location or _outside_city(hierarchy), locator,
                                 category_start=row.start_level, unit=category.unit if category else None)
        before = {"grid": row.grid_id, "station": row.station_id, "subcenter": row.subcenter_id, "hq": row.hq_id}
        after = _ids(location, suffix="")
        if before == after:
            continue
        db.execute(store.dispatches.update().where(store.dispatches.c.case_id == row.case_id).values(
            version=version, triage=location.triage, candidates=[vars(c) for c in location.candidates],
            **_ids(location)))
        outbox.add(db, make_message("case.transferred", {
            "case_id": row.case_id, **_refs(location), "level": None,
            "reason": f"area version {version} activated", "actor": "dispatch",
        }, occurred_at=now, producer="dispatch", correlation_id=row.case_id))
        moves.append(Move(row.case_id, row.number, before, after))
    return moves


# -- transfer ------------------------------------------------------------------------------------------


class TransferError(ValueError):
    pass


def transfer_case(engine: sa.Engine, case_id: str, target: str, *, reason: str, actor: str, areas: AreaIndex,
                  clock: Clock) -> dict:
    """Staff move a case to another grid or station (a wrong location, a wrong category)."""
    with engine.begin() as db:
        active = areas.version(store.active_version(db, share_lock=True), db)
        row = store.get_dispatch(db, case_id)
        if row is None:
            raise LookupError(case_id)
        if row.closed_at is not None:
            raise TransferError("the case is closed")
        try:
            location = active.locator.unit(target)
        except KeyError:
            raise TransferError(f"no area {target!r} in area version {active.version}") from None
        level = location.owner_level()
        if level not in ("grid", "station"):
            raise TransferError("a case is transferred to a grid or a station")
        db.execute(store.dispatches.update().where(store.dispatches.c.case_id == case_id).values(
            version=active.version, triage=False, candidates=[], **_ids(location)))
        outbox.add(db, make_message("case.transferred", {
            "case_id": case_id, **_refs(location), "level": level, "reason": reason, "actor": actor,
        }, occurred_at=clock.now(), producer="dispatch", correlation_id=case_id))
        return {"case_id": case_id, "level": level, **_refs(location)}


def _ids(location: Location, suffix: str = "_id") -> dict[str, str | None]:
    return {f"{level}{suffix}": (getattr(location, level).id if getattr(location, level) else None)
            for level in LEVELS}


def _refs(location: Location) -> dict[str, dict | None]:
    return {level: ({"id": ref.id, "name": ref.name} if (ref := getattr(location, level)) else None)
            for level in LEVELS}
