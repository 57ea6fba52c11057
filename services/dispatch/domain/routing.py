"""Who owns a case: where the point lies, raised by the category's policy, or a named unit.

A point in no grid (a gap, or outside the city) is owned by the lowest level that holds it. A
category may start higher (urgent safety hazards go straight to the sub-center), or name the unit
that takes all its cases; a unit the active hierarchy does not have is ignored, so a policy that
names an old area id still routes by location.
"""
from __future__ import annotations

from services.dispatch.domain.locate import Location, Locator
from shared.vocabulary import Level


def start_level(location: Location, category_start: str | Level) -> Level:
    """The higher of the lowest level that holds the point and the category's start level."""
    return max(location.owners.owned_level(), Level.of(category_start))


def route(location: Location, locator: Locator, *, category_start: str | Level = Level.GRID,
          unit: str | None = None) -> tuple[Location, Level]:
    """The owners and the start level of a case reported at ``location``."""
    if unit is not None:
        try:
            placed = locator.unit(unit)
        except KeyError:
            pass
        else:
            return placed, placed.owners.owned_level()
    return location, start_level(location, category_start)
