"""Bearer tokens: signed JWTs carrying a role, an area and a user name. Deny by default."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from shared.fields import LIMITS, storable_problem
from shared.vocabulary import ROLE_SCOPE, Role, in_scope

ROLES = tuple(role.value for role in Role)
ALGORITHM = "HS256"


class AuthError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    role: str
    user: str
    area: str | None = None

    def sees(self, owners: dict[str, str | None]) -> bool:
        """Whether this identity's area covers a case owned by ``owners`` (area level → area id)."""
        return in_scope(self.role, self.area, owners)


def issue_token(secret: str, role: str, *, area: str | None = None, user: str | None = None,
                ttl: timedelta = timedelta(days=30), now: datetime | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role in ROLE_SCOPE and not area:
        raise ValueError(f"role {role} needs --area (the id of its {ROLE_SCOPE[Role(role)].area})")
    now = now or datetime.now(UTC)
    claims = {"sub": user or role, "role": role, "iat": now, "exp": now + ttl}
    if area:
        claims["area"] = area
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str) -> Identity:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as exc:
        raise AuthError(str(exc)) from exc
    if claims.get("role") not in ROLES:
        raise AuthError("token has no valid role")
    user, area = claims["sub"], claims.get("area")
    _check_claim("sub", user, LIMITS["user"])
    if area is not None:
        _check_claim("area", area, LIMITS["area_id"])
    return Identity(role=claims["role"], user=user, area=area)


def _check_claim(name: str, value, max_length: int) -> None:
    """A claim that is stored (``sub`` as a reporter or actor, ``area`` as an area id) must fit its
    column: a non-empty string of at most ``max_length`` characters with no control character or lone
    surrogate (``shared.fields``). Otherwise the token is refused (401), before anything is stored."""
    if not isinstance(value, str) or not value:
        raise AuthError(f"the {name} claim must be a non-empty string")
    if len(value) > max_length:
        raise AuthError(f"the {name} claim is {len(value)} characters long; at most {max_length} are accepted")
    problem = storable_problem(value)
    if problem:
        raise AuthError(f"the {name} claim {problem}")
