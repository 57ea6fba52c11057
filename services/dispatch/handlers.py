"""Dispatch's use cases: locate a reported case and import area hierarchies."""
from __future__ import annotations

import sqlalchemy as sa

from services.dispatch import store
from services.dispatch.areaindex import AreaIndex
from services.dispatch.domain.areas import LEVELS
from services.dispatch.domain.locate import AreaRef, Location, OutsideCity
from services.dispatch.domain.routing import start_level
from shared import outbox
from shared.clock import Clock
from shared.messages import Envelope, make_message
from shared.policy import Policy


def dispatch_case(db: sa.Connection, envelope: Envelope, payload: dict, *, areas: AreaIndex,
                  policy: Policy, clock: Clock) -> None:
    """``case.reported`` → find the owners → record it → ``case.dispatched``."""
    active = areas.current()
    lon, lat = payload["location"]["lon"], payload["location"]["lat"]
    try:
        location = active.locator.locate(lon, lat)
    except OutsideCity:
        hq = active.hierarchy.level("hq")[0]
        location = Location(grid=None, station=None, subcenter=None, hq=AreaRef(hq.id, hq.name),
                            triage=True, candidates=())
    category = policy.categories.get(payload["category"])
    level = start_level(location, category.start_level if category else "grid")
    now = clock.now()
    db.execute(store.dispatches.insert().values(
        case_id=payload["case_id"], number=payload["number"], category=payload["category"], lon=lon, lat=lat,
        version=active.version, start_level=level, grid_id=_id(location.grid), station_id=_id(location.station),
        subcenter_id=_id(location.subcenter), hq_id=location.hq.id, triage=location.triage,
        candidates=[vars(c) for c in location.candidates], dispatched_at=now))
    outbox.add(db, make_message("case.dispatched", {
        "case_id": payload["case_id"], "number": payload["number"], "category": payload["category"],
        "severity": payload["severity"], "reported_at": payload["reported_at"],
        "areas_version": active.version, "start_level": level,
        **{lvl: _ref(getattr(location, lvl)) for lvl in LEVELS},
        "triage": location.triage,
        "candidates": [{"id": c.id, "distance_m": round(c.distance_m, 1)} for c in location.candidates],
    }, occurred_at=now, producer="dispatch", correlation_id=envelope.correlation_id))


def _id(ref: AreaRef | None) -> str | None:
    return ref.id if ref else None


def _ref(ref: AreaRef | None) -> dict | None:
    return {"id": ref.id, "name": ref.name} if ref else None


def import_areas(engine: sa.Engine, levels: dict[str, dict], *, source: str, activate: bool, clock: Clock,
                 repair: bool = False, progress=None):
    """Validate and store a new version of the hierarchy; returns ``(version | None, findings)``.

    An import with any error finding changes nothing. Activating publishes ``areas.published``.
    """
    from services.dispatch.domain.geojson import build_hierarchy

    hierarchy, findings = build_hierarchy(levels, repair=repair, progress=progress)
    if hierarchy is None:
        return None, findings
    now = clock.now()
    summary = {level: len(hierarchy.level(level)) for level in LEVELS}
    summary["warnings"] = len(findings)
    with engine.begin() as db:
        version = store.save_hierarchy(db, hierarchy, source=source, summary=summary, now=now)
        if activate:
            activate_version(db, version, hierarchy, clock)
    return version, findings


def activate_version(db: sa.Connection, version: int, hierarchy, clock: Clock) -> None:
    now = clock.now()
    store.activate(db, version, now)
    outbox.add(db, make_message("areas.published", {
        "version": version,
        "areas": [{"id": a.id, "name": a.name, "level": a.level, "parent": a.parent} for a in hierarchy],
    }, occurred_at=now, producer="dispatch"))
