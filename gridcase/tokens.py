"""Development tokens printed by ``gridcase up``: one per role, scoped to the first area of its level."""
from __future__ import annotations

from shared.auth import ROLES, issue_token
from shared.vocabulary import ROLE_SCOPE, Role


def sample_point(system, grid_id: str) -> tuple[float, float]:
    """A point inside a grid, for the first report a new user files."""
    area = system.services["dispatch"].areas.current().hierarchy.get(grid_id)
    point = area.geometry.representative_point()
    return round(point.x, 6), round(point.y, 6)


def development_tokens(system, settings) -> list[tuple[str, str | None, str]]:
    active = system.services["dispatch"].areas.current()
    out = []
    for role in ROLES:
        level = ROLE_SCOPE.get(Role(role))
        area = active.hierarchy.level(level.area)[0].id if level else None
        user = f"{role}-{area}" if area else role
        out.append((role, area, issue_token(settings.secret, role, area=area, user=user)))
    return out
