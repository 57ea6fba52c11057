"""Development tokens printed by ``gridcase up``: one per role, scoped to the first area of its level."""
from __future__ import annotations

from shared.auth import ROLES, issue_token
from shared.vocabulary import ROLE_SCOPE, Role


def sample_point(system, grid_id: str) -> tuple[float, float]:
    """A point inside a grid, for the first report a new user files."""
    area = system.services["dispatch"].areas.current().hierarchy.get(grid_id)
    point = area.geometry.representative_point()
    return round(point.x, 6), round(point.y, 6)


def check_area(settings, role: str, area: str | None) -> None:
    """ValueError unless ``area`` fits ``role``: an area-scoped role's area must exist at its level in
    dispatch's active area version (read from dispatch's database); a city-wide role takes no area."""
    level = ROLE_SCOPE.get(Role(role))
    if level is None:
        if area:
            raise ValueError(f"role {role} sees the whole city and takes no --area")
        return
    if not area:
        raise ValueError(f"role {role} needs --area (the id of its {level.area})")
    import sqlalchemy as sa

    from services.dispatch.store import active_area_level
    from shared.db import make_engine

    engine = make_engine(settings.database_url("dispatch"))
    try:
        found = active_area_level(engine, area)
    except sa.exc.DBAPIError as exc:
        raise ValueError(f"dispatch has no areas to check {area!r} against (import a city first): "
                         f"{str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
    if found != level.area:
        raise ValueError(f"{area!r} is not a {level.area} of the active area version"
                         + (f" (it is a {found})" if found else ""))


def check_department(settings, role: str, department: str | None) -> None:
    """ValueError unless ``department`` fits ``role``: a department's token names one of the city's
    departments (read from dispatch's database); no other role takes one."""
    if role != Role.DEPARTMENT:
        if department:
            raise ValueError(f"role {role} takes no --department")
        return
    if not department:
        raise ValueError("role department needs --department (its id: gridcase departments list)")
    import sqlalchemy as sa

    from services.dispatch.store import departments
    from shared.db import make_engine

    engine = make_engine(settings.database_url("dispatch"))
    try:
        with engine.connect() as db:
            found = db.execute(sa.select(departments.c.id).where(departments.c.id == department)).scalar()
    except sa.exc.DBAPIError as exc:
        raise ValueError(f"dispatch has no departments to check {department!r} against: "
                         f"{str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
    if found is None:
        raise ValueError(f"{department!r} is not one of the city's departments (gridcase departments list)")


def development_tokens(system, settings) -> list[tuple[str, str | None, str]]:
    """One token per role (``(role, area or department, token)``): each scoped role in the first area of
    its level; a department role for the first of the city's departments, when it has any."""
    active = system.services["dispatch"].areas.current()
    with system.services["dispatch"].uow() as uow:
        city_departments = uow.store.departments()
    out = []
    for role in ROLES:
        if role == Role.DEPARTMENT:
            if city_departments:
                first = city_departments[0].id
                out.append((role, first, issue_token(settings.secret, role, department=first)))
            continue
        level = ROLE_SCOPE.get(Role(role))
        area = active.hierarchy.level(level.area)[0].id if level else None
        # a grid worker is a person (``gridcase token --user``); staff get their desk's subject, <role>@<area>
        user = "demo-worker" if role == Role.GRID_WORKER else None
        out.append((role, area, issue_token(settings.secret, role, area=area, user=user)))
    return out
