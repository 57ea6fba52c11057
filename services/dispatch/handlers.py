"""Dispatch's use cases: route a reported case, import and activate area versions (proposing re-routes to
escalation, which decides every change of owner), follow the owners escalation decided."""
from __future__ import annotations

from dataclasses import dataclass

from services.dispatch.areaindex import AreaIndex
from services.dispatch.domain.areas import LEVELS, Hierarchy
from services.dispatch.domain.locate import Location, Locator
from services.dispatch.domain.routing import route
from shared.clock import Clock
from shared.departments import Department, parse_departments
from shared.departments import Finding as DepartmentFinding
from shared.messages import events
from shared.owners import AreaRef, Owners
from shared.policy import Policy
from shared.uow import UnitOfWork


def dispatch_cases(messages: list[events.CaseReported], uow: UnitOfWork, *, areas: AreaIndex, policy: Policy,
                   clock: Clock) -> None:
    """``case.reported`` → find the owners → record them → ``case.dispatched``, for a batch at once.

    A report flagged ``location_unverified`` (a grid worker's phone had no usable position) is routed
    to its ``reporter_grid`` instead of its point, and its dispatch record keeps a point inside that
    grid, so a later area version re-routes it from there; a grid no longer in the active version
    falls back to the point (or to headquarters' triage without one)."""
    with uow:
        active = areas.version(uow.store)
        points = [m.location or events.Location(0.0, 0.0) for m in messages]
        located = active.locator.locate_many([p.lon for p in points], [p.lat for p in points])
        now = clock.now()
        records = []
        for message, point, location in zip(messages, points, located, strict=True):
            if message.location is None:
                location = None
            if message.location_unverified and (grid := active.hierarchy.get(message.reporter_grid or "")):
                location = active.locator.unit(grid.id)
                inside = grid.geometry.representative_point()
                point = events.Location(inside.x, inside.y)
            category = policy.categories.get(message.category)
            location, level = route(location or _outside_city(active.hierarchy), active.locator,
                                    category_start=category.start_level_for(message.severity) if category else "grid",
                                    unit=category.unit if category else None)
            found = location.owners
            records.append({"case_id": message.case_id, "number": message.number, "category": message.category,
                            "lon": point.lon, "lat": point.lat, "version": active.version,
                            "start_level": level.area, "triage": location.triage,
                            "candidates": [vars(c) for c in location.candidates], "dispatched_at": now,
                            **found.columns()})
            uow.add(events.CaseDispatched(
                case_id=message.case_id, number=message.number, category=message.category,
                severity=message.severity, reported_at=message.reported_at, areas_version=active.version,
                start_level=level, owners=found, triage=location.triage,
                candidates=tuple(events.Candidate(c.id, c.distance_m) for c in location.candidates),
                description=message.description, location=message.location, reporter=message.reporter,
                location_unverified=message.location_unverified, channel=message.channel), cause=message)
        uow.store.add(records)
        uow.commit()


def close_case(message: events.CaseChanged, uow: UnitOfWork, *, clock: Clock) -> None:
    """``case.closed`` (and a report refused, voided or merged: it ended without a fix) → a new area
    version no longer moves this case; ``case.reopened`` → it does again. Applied only if newer than what
    the record last took from escalation (``events.revision_key``): a redelivered ``case.closed`` never
    closes a case reopened since."""
    with uow:
        uow.store.follow(message.case_id, events.revision_key(message),
                         closed_at=None if message.event == "case.reopened" else clock.now())
        uow.commit()


def follow_transfer(message: events.CaseTransferred, uow: UnitOfWork) -> None:
    """``case.transferred`` from escalation (the owners it decided: a staff transfer, a re-route this
    service proposed, or the owners a case kept when it refused one) → the dispatch record takes them, so
    a later area version re-routes from them; only if newer than what the record last took
    (``events.revision_key``). Owners the record has already (a re-route it proposed) only record the
    revision. Dispatch's own proposals are not read back."""
    if message.envelope is not None and message.envelope.producer == "dispatch":
        return
    with uow:
        record = uow.store.get(message.case_id)
        if record is not None:
            moved = Owners.from_columns(record).ids() != message.owners.ids()
            uow.store.follow(message.case_id, events.revision_key(message), **(dict(
                version=uow.store.active_version(), triage=False, candidates=[], **message.owners.columns())
                if moved else {}))
        uow.commit()


def _outside_city(hierarchy: Hierarchy) -> Location:
    """A reported case is never dropped: a point outside the city goes to headquarters for triage."""
    hq = hierarchy.level("hq")[0]
    return Location(Owners(hq=AreaRef(hq.id, hq.name)), triage=True, candidates=())


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


@dataclass(frozen=True)
class ImportAreas:
    """The command: one GeoJSON FeatureCollection per level, where they came from, and what to do."""
    levels: dict[str, dict]
    source: str
    activate: bool = True
    repair: bool = False
    progress: object = None  # callable(step, done, total) for a progress bar


def import_areas(command: ImportAreas, uow: UnitOfWork, *, clock: Clock, policy: Policy) -> ImportResult:
    """Validate and store a new version of the hierarchy; an import with any error changes nothing.

    Activating it publishes ``areas.published`` and re-routes the open cases whose owner changed.
    """
    from services.dispatch.domain.geojson import build_hierarchy

    hierarchy, findings = build_hierarchy(command.levels, repair=command.repair, progress=command.progress)
    if hierarchy is None:
        return ImportResult(None, findings, [])
    summary = {level: len(hierarchy.level(level)) for level in LEVELS}
    summary["warnings"] = len(findings)
    moves: list[Move] = []
    with uow:
        version = uow.store.save_hierarchy(hierarchy, source=command.source, summary=summary, now=clock.now())
        if command.activate:
            moves = _activate(version, hierarchy, uow, clock=clock, policy=policy)
        uow.commit()
    return ImportResult(version, findings, moves)


def _activate(version: int, hierarchy: Hierarchy, uow: UnitOfWork, *, clock: Clock, policy: Policy) -> list[Move]:
    uow.store.activate(version, clock.now())
    uow.add(events.AreasPublished(version=version, areas=tuple(
        events.PublishedArea(a.id, a.name, a.level, a.parent) for a in hierarchy)))
    return _reroute_open_cases(version, hierarchy, uow, policy=policy)


def _reroute_open_cases(version: int, hierarchy: Hierarchy, uow: UnitOfWork, *, policy: Policy) -> list[Move]:
    """Locate every open case again under ``version``; for those whose owners changed, record the new
    owners and propose them to escalation (``case.transferred`` without a level, with the case revision
    the record last took as its ``basis``), which decides and answers with the owners the case has: this
    record follows that answer (``follow_transfer``). A proposal from before a staff transfer the record
    has not yet taken is stale, and escalation ignores it."""
    rows = uow.store.open_dispatches()
    if not rows:
        return []
    locator = Locator(hierarchy)
    located = locator.locate_many([r.lon for r in rows], [r.lat for r in rows])
    moves = []
    for row, location in zip(rows, located, strict=True):
        category = policy.categories.get(row.category)
        location, _level = route(location or _outside_city(hierarchy), locator,
                                 category_start=row.start_level, unit=category.unit if category else None)
        before = Owners.from_columns(row).ids()
        found = location.owners
        if before == found.ids():
            continue
        uow.store.move(row.case_id, version=version, owners=found, triage=location.triage,
                       candidates=[vars(c) for c in location.candidates])
        uow.add(events.CaseTransferred(case_id=row.case_id, owners=found, level=None,
                                       reason=f"area version {version} activated", actor="dispatch",
                                       basis=row.case_revision))
        moves.append(Move(row.case_id, row.number, before, found.ids()))
    return moves


# -- departments ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportDepartments:
    """The command: a departments file's bytes (``shared.departments``) and its name for findings."""
    data: bytes
    file: str = "departments.toml"


@dataclass(frozen=True)
class DepartmentsImported:
    version: int | None  # None: nothing imported (see the findings)
    departments: list
    findings: list


def import_departments(command: ImportDepartments, uow: UnitOfWork, *, policy: Policy) -> DepartmentsImported:
    """Check a departments file against the policy's categories and the active area version, and on no
    finding replace the city's departments and publish them (``departments.published``). A file with
    any finding changes nothing."""
    with uow:
        active = uow.store.active_version()
        areas = uow.store.area_levels(active) if active is not None else {}
        found, findings = parse_departments(command.data, file=command.file, categories=policy.categories,
                                            areas=areas)
        if active is None:
            findings.append(DepartmentFinding(command.file, None, "no active area version: import the areas first"))
        if findings:
            return DepartmentsImported(None, found, findings)
        version = uow.store.replace_departments(found)
        uow.add(events.DepartmentsPublished(version=version, departments=tuple(found)))
        uow.commit()
    return DepartmentsImported(version, found, [])


def list_departments(uow: UnitOfWork) -> list[Department]:
    """The city's departments, by id."""
    with uow:
        return uow.store.departments()
