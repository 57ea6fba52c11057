"""Bearer tokens: signed JWTs carrying a role, an area and a subject (one per person). Deny by default.

Two kinds of signer are accepted (``TokenVerifier``):

- **HS256** with the shared secret ``GRIDCASE_SECRET`` (at least ``MIN_SECRET_BYTES`` bytes): the
  development tokens of ``gridcase token`` and ``gridcase up``;
- **RS256 / ES256** with the public keys of a real identity provider, from a JWKS
  (``GRIDCASE_JWKS_URL``: an ``https://`` URL, read with PyJWT's ``PyJWKClient`` and cached, or a
  file path / ``file://`` URL read once). The token's ``kid`` picks the key; the key's type fixes
  the algorithm, so an HS256 token can never be checked against a public key (algorithm confusion).
  Such a token must carry ``aud`` naming ``GRIDCASE_JWT_AUDIENCE`` (a string or a list holding it) and
  ``iss`` equal to ``GRIDCASE_JWT_ISSUER`` (RFC 7519 §4.1.1, §4.1.3): an identity provider signs tokens
  for every application it serves with the same keys, and one issued for another application must
  not open this one. Both settings are required with a JWKS (``TokenVerifier`` refuses to start).

Every claim is checked for presence and type before anything else runs (``read_token``): ``sub``
(a non-empty storable string of at most 128 characters: the person), ``role`` (one of ``Role``),
``area`` (a storable string of at most 64 characters; required for the area-scoped roles
``grid_worker``, ``station`` and ``subcenter``), ``department`` (a department's id: on a
``department`` token only, and required there), ``exp`` and ``iat`` (numbers; a lifetime
``exp - iat`` of at most ``MAX_LIFETIME``, and ``exp`` no further than that from now). A failed
check is an ``AuthError`` (401).

**Unit subjects.** A ``sub`` equal to the id of one of the city's units (an area or a functional
department) is refused (401 naming ``sub``), whoever signed the token: a person's subject is their
own, and one that is a unit's would be read as that unit wherever people and units share a name
(notification addressees, handlers, the audit trail). ``gridcase token`` refuses such a ``--user``
before signing; an identity provider's token is refused here, when it is read. The lookup
(``units``: subject → the kind of unit it names, or None) is each service's, from its own database
(``ServiceSpec.units``), and runs when a token is verified (so at most ``CACHE_SECONDS`` after the
unit appears).

**Revocation.** Every token ``gridcase token`` issues carries a ``jti`` (a random id). A
``TokenVerifier`` given ``revoked`` (``shared.revocations.Revocations.revoked``) asks it on every
read, cached or not, whether the token's ``jti``, or its ``sub`` issued at its ``iat``, was revoked
(``gridcase token revoke``); a revoked token is an ``AuthError`` (401).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from shared.fields import LIMITS, storable_problem
from shared.owners import Owners, in_scope
from shared.vocabulary import ROLE_SCOPE, Role
from shared.words import Message, Said, word

log = logging.getLogger("gridcase.auth")

ROLES = tuple(role.value for role in Role)
ALGORITHM = "HS256"
#: Algorithms accepted from an identity provider's JWKS (by key type: RSA → RS256, EC P-256 → ES256).
PROVIDER_ALGORITHMS = ("RS256", "ES256")
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_SECRET_BYTES = 32
#: The longest a token may live (issued or read): a lost phone's token stops working within a month.
MAX_LIFETIME = timedelta(days=30)
#: Clock skew tolerated between the issuer and this process (on ``iat`` and ``exp``).
LEEWAY = timedelta(seconds=60)
#: The subjects of Open311 clients' reports (``open311:<key name>``): what the public listing shows, so no
#: token may take such a subject (its holder's reports would be published).
OPEN311_SUBJECT_PREFIX = "open311:"


class AuthError(Exception):
    """Why a token is refused (401): a catalogue message (``auth.*``, ``message``) that the caller reads in
    their language inside ``request.token_invalid``; ``str()`` is its English text. A library's own words
    about the token (PyJWT's "Not enough segments") never reach it: each kind of failure has its message."""

    def __init__(self, code: str, /, **params):
        self.message = Message(code, params)
        self.code = code
        super().__init__(self.message.text())


def desk_subject(role: str, area: str | None = None, department: str | None = None) -> str:
    """The subject of a staff desk's token without a person: ``<role>@<area>`` (``<role>@<department>``),
    or the role's name city-wide."""
    unit = area or department
    return f"{role}@{unit}" if unit else role


def subject_problem(subject: str, role: str, area: str | None = None, department: str | None = None) -> str | None:
    """Why ``subject`` may not be the subject of a ``role`` token in ``area`` (None: it may). Role names and
    desk subjects (``<role>@…``) are the desks': a person's token with such a subject would read and file
    as that desk (``--user command`` made a grid worker who read the command desk's reports). A token may
    carry them only as its own desk (``desk_subject``). Open311 clients' subjects are refused too."""
    if subject.startswith(OPEN311_SUBJECT_PREFIX):
        return Said("auth.sub_open311", prefix=repr(OPEN311_SUBJECT_PREFIX))
    head, at, _ = subject.partition("@")
    reserved = subject.casefold() in ROLES or (at and head.casefold() in ROLES)
    if reserved and subject != desk_subject(role, area, department):
        return Said("auth.sub_desk", subject=repr(subject))
    return None


@dataclass(frozen=True)
class Identity:
    role: str
    user: str
    area: str | None = None
    department: str | None = None  # a functional department's id (role ``department``)

    def sees(self, owners: Owners) -> bool:
        """Whether this identity's area covers a case owned by ``owners``."""
        return in_scope(self.role, self.area, owners)


def check_secret(secret: str) -> None:
    """ValueError unless ``secret`` is at least ``MIN_SECRET_BYTES`` bytes of UTF-8 (RFC 7518 §3.2)."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"GRIDCASE_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                         f"(it is {len(secret.encode())}); e.g. openssl rand -hex 32")


def issue_token(secret: str, role: str, *, area: str | None = None, user: str | None = None,
                ttl: timedelta = MAX_LIFETIME, now: datetime | None = None, department: str | None = None) -> str:
    """A development token (HS256 with ``secret``) for ``role`` in ``area``, subject ``user``.

    ValueError for an unknown role, a scoped role without an area, a grid worker without a user (a
    grid worker is a person: their reports, Idempotency-Keys and verifications are theirs alone), a
    lifetime over ``MAX_LIFETIME`` or not positive, or a short secret. A staff role without a user
    gets the subject ``<role>@<area>`` (the desk of that area), or the role's name city-wide."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role in ROLE_SCOPE and not area:
        raise ValueError(f"role {role} needs --area (the id of its {ROLE_SCOPE[Role(role)].area})")
    if role == Role.GRID_WORKER and not user:
        raise ValueError("a grid worker's token needs --user (the person's own id, e.g. a staff number)")
    if (role == Role.DEPARTMENT) != bool(department):
        raise ValueError("a department's token needs --department (its id), and only a department's")
    if user and (problem := subject_problem(user, role, area, department)):
        raise ValueError(f"--user {problem}")
    if not timedelta(0) < ttl <= MAX_LIFETIME:
        raise ValueError(f"a token lives at most {MAX_LIFETIME.days} days")
    check_secret(secret)
    now = now or datetime.now(UTC)
    subject = user or desk_subject(role, area, department)
    claims = {"sub": subject, "role": role, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
    if area:
        claims["area"] = area
    if department:
        claims["department"] = department
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


PROVIDER_SETTINGS = ("GRIDCASE_JWKS_URL is set, so GRIDCASE_JWT_AUDIENCE and GRIDCASE_JWT_ISSUER are required: "
                      "the aud and iss your identity provider puts in the tokens it issues for gridcase (without "
                      "them a token it issued for another application would be accepted here)")


class TokenVerifier:
    """Checks bearer tokens: HS256 against ``secret``, RS256/ES256 against the JWKS at ``jwks``
    (a URL or a file path; None: no identity provider, such tokens are refused) with their ``aud``
    naming ``audience`` and their ``iss`` equal to ``issuer`` (both required with ``jwks``: ValueError).
    ``revoked`` and ``units``: see "Revocation" and "Unit subjects" above."""

    #: verified tokens kept, and for how long at most (a phone sends the same token with every request)
    CACHE_SIZE = 4096
    CACHE_SECONDS = 300

    def __init__(self, secret: str, jwks: str | None = None, *, audience: str | None = None,
                 issuer: str | None = None, revoked: Callable[[str | None, str, float], bool] | None = None,
                 units: Callable[[str], str | None] | None = None):
        check_secret(secret)
        if jwks and not (audience and issuer):
            raise ValueError(PROVIDER_SETTINGS)
        self.secret = secret
        self.audience, self.issuer = audience, issuer
        self.revoked = revoked  # (jti or None, sub, iat) → whether revoked; asked on every read
        self.units = units  # sub → the kind of the city's unit it is the id of ("grid", "department"), or None
        self._verified: dict[str, tuple[Identity, float, str | None, float]] = {}
        self._client = self._keys = None
        if jwks and jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=300, timeout=5)
        elif jwks:
            path = Path(jwks.removeprefix("file://"))
            self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_json(path.read_text()).keys}

    def key_for(self, token: str, header: dict):
        """(key, algorithm) for ``token``; AuthError for an algorithm or key id not configured."""
        alg = header.get("alg")
        if alg == ALGORITHM:
            return self.secret, ALGORITHM
        if alg not in PROVIDER_ALGORITHMS:
            raise AuthError("auth.algorithm_not_accepted", alg=repr(alg))
        try:
            if self._client is not None:
                key = self._client.get_signing_key_from_jwt(token)
            elif self._keys is not None:
                key = self._keys.get(header.get("kid"))
            else:
                raise AuthError("auth.no_provider")
        except jwt.PyJWKClientError as exc:  # the provider's answer, for the operator: not the caller's to read
            log.warning("identity provider keys unreadable: %s", exc)
            raise AuthError("auth.provider_keys_unreadable") from exc
        if key is None:
            raise AuthError("auth.unknown_kid")
        if key.algorithm_name not in PROVIDER_ALGORITHMS or key.algorithm_name != alg:
            raise AuthError("auth.key_algorithm", kid=repr(header.get("kid")), alg=alg)
        return key.key, alg

    def read(self, token: str, now: datetime | None = None) -> Identity:
        """The identity a token proves; AuthError for anything wrong with it (see the module docstring).

        A token verified in the last ``CACHE_SECONDS`` is not verified again until it expires (the
        signature and claims of one token string cannot change; its expiry is checked every time).
        Whether it was revoked is asked every time (``revoked``)."""
        moment = (now or datetime.now(UTC)).timestamp()
        cached = self._verified.get(token)
        if cached is None or moment >= cached[1]:
            identity, expires = self._verify(token, now)
            token_id, issued = _revocation_claims(token)
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.clear()
            cached = self._verified[token] = (identity, min(expires, moment + self.CACHE_SECONDS), token_id, issued)
        if self.revoked is not None and self.revoked(cached[2], cached[0].user, cached[3]):
            raise AuthError("auth.revoked")
        return cached[0]

    def _verify(self, token: str, now: datetime | None) -> tuple[Identity, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _refusal(exc) from exc
        key, alg = self.key_for(token, header)
        provider = alg in PROVIDER_ALGORITHMS
        required = ["exp", "iat", "sub"] + (["aud", "iss"] if provider else [])
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=self.audience if provider else None,
                                issuer=self.issuer if provider else None, options={
                                    "require": required, "verify_sub": False, "verify_exp": False,
                                    "verify_iat": False, "verify_aud": provider})
        except jwt.InvalidAudienceError as exc:
            raise AuthError("auth.wrong_audience", audience=repr(self.audience)) from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("auth.wrong_issuer", issuer=repr(self.issuer)) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError("auth.claim_required", claim=exc.claim) from exc
        except jwt.PyJWTError as exc:
            raise _refusal(exc) from exc
        identity = identity_from_claims(claims, now or datetime.now(UTC))
        if self.units is not None and (kind := self.units(identity.user)):
            raise AuthError("auth.sub_unit", subject=repr(identity.user), kind=word("area", kind))
        return identity, float(claims["exp"])


def identity_from_claims(claims: dict, now: datetime) -> Identity:
    """The identity of verified ``claims``, each checked for presence and type; AuthError naming the claim."""
    role = claims.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise AuthError("auth.role_claim", roles=", ".join(ROLES))
    user, area = claims.get("sub"), claims.get("area")
    _check_claim("sub", user, LIMITS["user"])
    if area is not None or Role(role) in ROLE_SCOPE:
        if area is None:
            raise AuthError("auth.area_claim_needed", role=role)
        _check_claim("area", area, LIMITS["area_id"])
    department = claims.get("department")
    if department is not None or role == Role.DEPARTMENT:
        if role != Role.DEPARTMENT or department is None:
            raise AuthError("auth.department_claim")
        _check_claim("department", department, LIMITS["area_id"])
    if problem := subject_problem(user, role, area, department):
        raise AuthError("auth.claim_unstorable", claim="sub", problem=problem.message)
    issued, expires = claims.get("iat"), claims.get("exp")
    for name, value in (("iat", issued), ("exp", expires)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AuthError("auth.time_claim", claim=name)
    if expires <= (now - LEEWAY).timestamp():
        raise AuthError("auth.expired")
    if issued > (now + LEEWAY).timestamp():
        raise AuthError("auth.issued_in_future")
    if expires - issued > MAX_LIFETIME.total_seconds():
        raise AuthError("auth.lives_too_long", days=MAX_LIFETIME.days)
    if expires > (now + MAX_LIFETIME + LEEWAY).timestamp():
        raise AuthError("auth.expires_too_far", days=MAX_LIFETIME.days)
    return Identity(role=role, user=user, area=area, department=department)


def _revocation_claims(token: str) -> tuple[str | None, float]:
    """The ``jti`` (None when absent) and ``iat`` of a token whose signature and claims were verified."""
    claims = jwt.decode(token, options={"verify_signature": False})
    token_id = claims.get("jti")
    if token_id is not None and (not isinstance(token_id, str) or not 0 < len(token_id) <= LIMITS["user"]):
        raise AuthError("auth.jti_claim", max=LIMITS["user"])
    return token_id, float(claims["iat"])


#: PyJWT's kinds of refusal → the catalogue's words for each (the first that matches; the order is the
#: classes' own, most specific first). Anything else PyJWT refuses: ``auth.not_verifiable``.
_PYJWT_REFUSALS = (
    (jwt.exceptions.InvalidSignatureError, "auth.bad_signature", {}),
    (jwt.exceptions.ImmatureSignatureError, "auth.not_yet_valid", {}),
    (jwt.exceptions.InvalidJTIError, "auth.jti_claim", {"max": LIMITS["user"]}),
    (jwt.exceptions.InvalidIssuedAtError, "auth.time_claim", {"claim": "iat"}),
    (jwt.exceptions.DecodeError, "auth.malformed", {}),
)


def _refusal(exc: jwt.PyJWTError) -> AuthError:
    """PyJWT's refusal as gridcase's (``AuthError``), by its kind: its own English text is not passed on."""
    code, params = next(((code, params) for kind, code, params in _PYJWT_REFUSALS if isinstance(exc, kind)),
                        ("auth.not_verifiable", {}))
    return AuthError(code, **params)


def read_token(secret: str, token: str, *, jwks: str | None = None, audience: str | None = None,
               issuer: str | None = None) -> Identity:
    """``TokenVerifier(secret, jwks, audience=…, issuer=…).read(token)``: for callers that check one token."""
    return TokenVerifier(secret, jwks, audience=audience, issuer=issuer).read(token)


def _check_claim(name: str, value, max_length: int) -> None:
    """A claim that is stored (``sub`` as a reporter or actor, ``area`` as an area id) must fit its
    column: a non-empty string of at most ``max_length`` characters with no control character or lone
    surrogate (``shared.fields``). Otherwise the token is refused (401), before anything is stored."""
    if not isinstance(value, str) or not value:
        raise AuthError("auth.claim_not_text", claim=name)
    if len(value) > max_length:
        raise AuthError("auth.claim_too_long", claim=name, length=len(value), max=max_length)
    problem = storable_problem(value)
    if problem:
        raise AuthError("auth.claim_unstorable", claim=name, problem=problem.message)
