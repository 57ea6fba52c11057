"""Who owns a case, one type for every service: ``Owners`` (the case's area at each level of the
hierarchy), ``OwnerRef`` (the owner at one level), and beside them the area-scope rule ``in_scope``.

A case is owned geographically at each area level: its grid (level 1), work station (2), sub-center (3)
and command headquarters (4). A point in no grid has no grid owner (and maybe no station); a case
outside every sub-center is owned by headquarters alone. Functional departments (职能部门) handle cases
beside these owners; they are assignments on the case, not owners (escalation's ``domain/departments``).

Every store keeps ``Owners`` as the JSON of ``to_json`` and/or the id columns of ``ids``; messages carry
them flat (``grid``, ``station``, ``subcenter``, ``hq`` as ``{"id", "name"}``) or, for the area scope,
as ids only (``scope``). An ``AreaRef`` read from ids alone has the name ``""``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.vocabulary import AREA_LEVELS, ROLE_SCOPE, SCOPED_AREA_LEVELS, Level, Role


@dataclass(frozen=True, slots=True)
class AreaRef:
    """One area of the hierarchy: its id and, where known, its name."""

    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """The owner of a case at one level (on the wire: ``{"level", "area_id", "area_name"}``)."""

    level: Level
    area_id: str
    area_name: str


@dataclass(frozen=True, slots=True)
class Owners:
    """The owning area at each level, lowest first; None where the level has no owner. A case's owners
    always include headquarters; the area scope (``scope``) leaves it out."""

    grid: AreaRef | None = None
    station: AreaRef | None = None
    subcenter: AreaRef | None = None
    hq: AreaRef | None = None

    def at(self, level: Level | int | str) -> AreaRef | None:
        """The owner at ``level`` (a ``Level``, its number or its area name), or None."""
        return getattr(self, Level.of(level).area)

    def owner(self, level: Level) -> OwnerRef:
        """The owner at ``level`` as an ``OwnerRef``; ValueError where the level has none."""
        ref = self.at(level)
        if ref is None:
            raise ValueError(f"no owner at level {int(level)} ({Level.of(level).area})")
        return OwnerRef(Level.of(level), ref.id, ref.name)

    def owned_level(self, level: Level | int | str = Level.GRID) -> Level:
        """The first level at or above ``level`` that has an owner (headquarters at the latest): where a
        case placed at ``level`` is handled. ``owned_level()`` is the lowest owned level."""
        level = Level.of(level)
        while level < Level.HQ and self.at(level) is None:
            level = level.up
        return level

    def ids(self) -> dict[str, str | None]:
        """Area level name → area id (None where the level has no owner), headquarters first."""
        return {name: (ref.id if (ref := getattr(self, name)) else None) for name in AREA_LEVELS}

    def scope(self) -> dict[str, str | None]:
        """The area scope: the owners' ids below headquarters (``grid``, ``station``, ``subcenter``)."""
        return {name: (ref.id if (ref := getattr(self, name)) else None) for name in SCOPED_AREA_LEVELS}

    def columns(self, levels: tuple[str, ...] = AREA_LEVELS) -> dict[str, str | None]:
        """The store mapper's id columns: ``{"<level>_id": area id or None}`` for ``levels``."""
        return {f"{name}_id": (ref.id if (ref := getattr(self, name)) else None) for name in levels}

    @classmethod
    def from_columns(cls, row: object, levels: tuple[str, ...] = AREA_LEVELS) -> Owners:
        """The inverse of ``columns``: owners known by id from a row's ``<level>_id`` attributes."""
        return cls(**{name: AreaRef(area_id) for name in levels if (area_id := getattr(row, f"{name}_id", None))})

    def to_json(self) -> dict[str, dict | None]:
        """``{level name: {"id", "name"} or None}`` for every level (stores, API answers)."""
        return {name: ({"id": ref.id, "name": ref.name} if (ref := getattr(self, name)) else None)
                for name in AREA_LEVELS}

    @classmethod
    def from_json(cls, data: object, *, require_hq: bool = True) -> Owners:
        """The inverse of ``to_json``; ValueError for another shape, or without headquarters when
        ``require_hq``. Levels missing from ``data`` have no owner."""
        if not isinstance(data, Mapping):
            raise ValueError("owners are {level name: {\"id\", \"name\"} or null}")
        refs = {}
        for name in AREA_LEVELS:
            ref = data.get(name)
            if ref is None:
                continue
            if not (isinstance(ref, Mapping) and isinstance(ref.get("id"), str) and ref["id"]):
                raise ValueError(f"the {name} owner is {{\"id\", \"name\"}} or null")
            refs[name] = AreaRef(ref["id"], str(ref.get("name") or ""))
        if require_hq and "hq" not in refs:
            raise ValueError("owners must name headquarters")
        return cls(**refs)

    @classmethod
    def from_ids(cls, ids: Mapping[str, str | None]) -> Owners:
        """Owners known by id only (an area scope, a store's id columns): names are ``""``."""
        return cls(**{name: AreaRef(area_id) for name in AREA_LEVELS if (area_id := ids.get(name))})


#: A case nobody owns yet (a report not yet dispatched): in no caller's area scope.
NO_OWNERS = Owners()


def in_scope(role: str, area: str | None, owners: Owners) -> bool:
    """The area-scope rule: whether a caller (``role``, ``area`` id) may see a case owned by ``owners``.

    A grid worker sees the cases of one grid, a station of its grids, a sub-center of its stations;
    command headquarters, supervisors and admins the whole city. A scoped role sees a case when the
    case's owner at the role's level is the caller's area; a scoped caller with no area sees nothing.
    A functional department sees no case by area: only those assigned to it (escalation's store).
    Each store's ``scoped(query, identity)`` is this rule in SQL."""
    if role == Role.DEPARTMENT:
        return False
    level = ROLE_SCOPE.get(Role(role))
    if level is None:
        return True
    ref = owners.at(level)
    return area is not None and ref is not None and ref.id == area
