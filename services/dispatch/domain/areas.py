"""The city's four-level area hierarchy: headquarters → sub-centers → stations → grids.

Plain Python over shapely geometries; no framework, no storage.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shapely.geometry.base import BaseGeometry

from shared.vocabulary import AREA_LEVELS as LEVELS  # from the top (the city) to the bottom (a grid)


def parent_level(level: str) -> str | None:
    i = LEVELS.index(level)
    return LEVELS[i - 1] if i > 0 else None


def child_level(level: str) -> str | None:
    i = LEVELS.index(level)
    return LEVELS[i + 1] if i + 1 < len(LEVELS) else None


@dataclass(frozen=True)
class Area:
    id: str
    name: str
    level: str
    parent: str | None
    geometry: BaseGeometry


class Hierarchy:
    """An immutable set of areas with parent links, indexed by id and by level."""

    def __init__(self, areas: Iterable[Area]):
        self._by_id: dict[str, Area] = {}
        self._by_level: dict[str, list[Area]] = {level: [] for level in LEVELS}
        for area in areas:
            self._by_id[area.id] = area
            self._by_level[area.level].append(area)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Area]:
        for level in LEVELS:
            yield from self._by_level[level]

    def get(self, area_id: str) -> Area | None:
        return self._by_id.get(area_id)

    def level(self, level: str) -> list[Area]:
        return self._by_level[level]

    def ancestors(self, area_id: str) -> dict[str, Area]:
        """The area itself and every area above it, keyed by level."""
        chain: dict[str, Area] = {}
        area = self._by_id.get(area_id)
        while area is not None and area.level not in chain:
            chain[area.level] = area
            area = self._by_id.get(area.parent) if area.parent else None
        return chain
