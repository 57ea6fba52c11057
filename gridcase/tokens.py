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


def check_subject(settings, user: str | None) -> None:
    """ValueError when ``--user`` names one of the city's units (an area of the active version or a
    department, read from dispatch's database: ``services.dispatch.store.unit_kind``, the lookup dispatch
    refuses such a token's ``sub`` with): a person's subject is their own, never a unit's (role and desk
    names are ``shared.auth.subject_problem``'s, checked when the token is issued)."""
    if not user:
        return
    import sqlalchemy as sa

    from services.dispatch.store import unit_kind
    from shared.db import make_engine

    engine = make_engine(settings.database_url("dispatch"))
    try:
        kind = unit_kind(engine, user)
    except sa.exc.DBAPIError:
        return  # no city imported yet: there is no unit to collide with
    finally:
        engine.dispose()
    if kind:
        raise ValueError(f"--user {user!r} is the id of a {kind} of the city (a unit): "
                         "a person needs a subject of their own")


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
    its level; a department role for the first of the city's departments that leads a category (the
    first of them when none does), when it has any."""
    active = system.services["dispatch"].areas.current()
    with system.services["dispatch"].uow() as uow:
        city_departments = uow.store.departments()
    out = []
    for role in ROLES:
        if role == Role.DEPARTMENT:
            if city_departments:
                first = next((d for d in city_departments if d.leads), city_departments[0]).id
                out.append((role, first, issue_token(settings.secret, role, department=first)))
            continue
        level = ROLE_SCOPE.get(Role(role))
        area = active.hierarchy.level(level.area)[0].id if level else None
        # a grid worker is a person (``gridcase token --user``); staff get their desk's subject, <role>@<area>
        user = "demo-worker" if role == Role.GRID_WORKER else None
        out.append((role, area, issue_token(settings.secret, role, area=area, user=user)))
    return out


def token_id_of(settings, token: str) -> str:
    """The ``jti`` of a token this deployment accepts (verified with its secret or identity provider);
    ValueError for a token it would refuse, or one without a ``jti``."""
    import jwt

    from shared.auth import AuthError, TokenVerifier

    try:
        TokenVerifier(settings.secret, settings.jwks_url).read(token)
    except AuthError as exc:
        raise ValueError(f"not a token this deployment accepts: {exc}") from exc
    token_id = jwt.decode(token, options={"verify_signature": False}).get("jti")
    if not isinstance(token_id, str) or not token_id:
        raise ValueError("this token carries no jti (issued before tokens had one): revoke its --user instead")
    return token_id


def revoke_everywhere(settings, *, token_id: str | None = None, subject: str | None = None,
                      note: str = "") -> dict[str, str | None]:
    """Write the revocation (``shared.revocations.revoke``) to each service's database, each checks
    every token; returns service → None (written) or the error that kept it from that database. Run
    again after a failure: a revocation written twice changes nothing."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from shared.config import SERVICES
    from shared.db import make_engine
    from shared.migrations import upgrade
    from shared.revocations import revoke

    now = datetime.now(UTC)  # tokens' iat is real time, never the service clock
    out: dict[str, str | None] = {}
    for service in SERVICES:
        engine = make_engine(settings.database_url(service))
        try:
            upgrade(engine, service)  # the table exists even in a database no service has started on yet
            with engine.begin() as connection:
                revoke(connection, now=now, token_id=token_id, subject=subject, note=note)
            out[service] = None
        except sa.exc.SQLAlchemyError as exc:
            out[service] = str(exc).splitlines()[0]
        finally:
            engine.dispose()
    return out
