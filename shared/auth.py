"""Bearer tokens: signed JWTs carrying a role, an area and a user name. Deny by default."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

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
    return Identity(role=claims["role"], user=claims["sub"], area=claims.get("area"))
