"""Which level a case starts at: where the point lies, raised by the category's policy."""
from __future__ import annotations

from services.dispatch.domain.areas import LEVEL_NUMBER
from services.dispatch.domain.locate import Location


def start_level(location: Location, category_start: str) -> str:
    """The higher of the lowest level that holds the point and the category's start level.

    A point in no grid (a gap, or outside the city) is owned by the lowest level that holds it;
    an urgent category may skip the lower levels entirely.
    """
    owner = location.owner_level()
    return owner if LEVEL_NUMBER[owner] >= LEVEL_NUMBER[category_start] else category_start
