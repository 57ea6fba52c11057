"""Subscriptions: what a new one must be, and who may manage one.

A subscription names at least one filter — ``unit`` (an area or a department of the city), ``user`` (a
person) or ``role`` — the ``events`` it hears (``events.EVENTS``), a ``channel`` (``events.CHANNELS``),
its ``target`` (an ``http(s)`` URL for ``webhook``, ``wecom`` and ``dingtalk``; an e-mail address for
``email``; none for ``inapp``), an optional ``secret`` (``webhook``: the HMAC key of
``Gridcase-Signature``, made for it when none is given and shown once; ``dingtalk``: the robot's 加签
secret), its ``language`` (``zh`` or ``en``) and ``quiet_hours`` (true: a notification about a case
that is not urgent waits for the working hours of the case's calendar).

Each problem is a ``SubscriptionError`` naming its field (the API answers 422, the command line prints
it). A URL whose host resolves to a loopback, private, link-local or otherwise non-public address is
refused (``target``) unless the city allows internal targets (``GRIDCASE_NOTIFY_ALLOW_PRIVATE=1``): a
subscription must not turn the notifier into a way into the city's own network. The notifier checks
again before each delivery, since a name may resolve elsewhere later.

**Who manages** (``may_manage``): an admin any subscription; the head of the unit a subscription names —
a station or sub-center for its own area, command for headquarters, a department for itself; a person
their own (``user`` = their token's subject, no unit or role). A subscription naming only a role is an
admin's.
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from marshmallow import ValidationError, validate

from services.escalation.notify.events import CHANNELS, EVENTS, LANGUAGES, LEVEL_ROLE
from shared.fields import storable_problem
from shared.vocabulary import Role
from shared.words import Said

URL_CHANNELS = ("webhook", "wecom", "dingtalk")
#: The roles a subscription may filter on: those a notice is addressed to.
ROLES = tuple(str(r) for r in LEVEL_ROLE.values()) + (str(Role.DEPARTMENT),)
LIMITS = {"unit": 64, "user": 128, "role": 16, "target": 2000, "secret": 200}
_EMAIL = validate.Email()


class SubscriptionError(ValueError):
    """A subscription that cannot be stored: ``field`` names what is wrong, ``detail`` says how (a
    catalogue message, ``shared.words.Said``: read in the caller's language; English in ``str()``)."""

    def __init__(self, field: str, detail: str | Said, /, **params):
        detail = detail if isinstance(detail, Said) else Said(detail, **params)
        super().__init__(f"{field}: {detail}")
        self.field, self.detail = field, detail


@dataclass(frozen=True)
class Units:
    """The city's units, to check a subscription's ``unit``: area id → area level, department ids."""

    areas: Mapping[str, str]
    departments: frozenset[str]

    def known(self, unit: str) -> bool:
        return unit in self.areas or unit in self.departments

    @property
    def headquarters(self) -> str | None:
        return next((a for a, level in self.areas.items() if level == "hq"), None)


def check(data: Mapping, units: Units, *, allow_private: bool,
          resolve: Callable[..., list[str]] | None = None) -> dict:
    """A new subscription's fields, checked and completed (``secret`` made for a webhook without one);
    ``SubscriptionError`` naming the first field that is wrong."""
    out = {}
    for name in ("unit", "user", "role"):
        value = data.get(name)
        if value is not None:
            out[name] = _text(name, value)
    if not any(out.get(n) for n in ("unit", "user", "role")):
        raise SubscriptionError("unit", "subscription.whom")
    if out.get("unit") and not units.known(out["unit"]):
        raise SubscriptionError("unit", "subscription.no_unit", unit=repr(out["unit"]))
    if out.get("role") and out["role"] not in ROLES:
        raise SubscriptionError("role", "subscription.one_of", choices=", ".join(ROLES))
    events = data.get("events")
    if not isinstance(events, list | tuple) or not events or not all(isinstance(e, str) for e in events):
        raise SubscriptionError("events", "subscription.events", choices=", ".join(EVENTS))
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise SubscriptionError("events", "subscription.unknown_event", event=repr(unknown[0]),
                                choices=", ".join(EVENTS))
    out["events"] = list(dict.fromkeys(events))
    channel = data.get("channel")
    if channel not in CHANNELS:
        raise SubscriptionError("channel", "subscription.one_of", choices=", ".join(CHANNELS))
    out["channel"] = channel
    out["target"] = _target(channel, data.get("target"), allow_private, resolve or addresses)
    secret = data.get("secret")
    if secret is not None:
        if channel not in ("webhook", "dingtalk"):
            raise SubscriptionError("secret", "subscription.no_secret", channel=channel)
        secret = _text("secret", secret)
        if len(secret) < 16 and channel == "webhook":
            raise SubscriptionError("secret", "subscription.secret_length", min=16)
    elif channel == "webhook":
        secret = secrets.token_urlsafe(32)
    out["secret"] = secret
    language = data.get("language", "zh")
    if language not in LANGUAGES:
        raise SubscriptionError("language", "subscription.one_of", choices=", ".join(LANGUAGES))
    out["language"] = language
    quiet = data.get("quiet_hours", False)
    if not isinstance(quiet, bool):
        raise SubscriptionError("quiet_hours", "subscription.true_or_false")
    out["quiet_hours"] = quiet
    return out


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SubscriptionError(name, "subscription.non_empty")
    problem = storable_problem(value)
    if problem:
        raise SubscriptionError(name, problem)
    if len(value) > LIMITS[name]:
        raise SubscriptionError(name, "subscription.too_long", max=LIMITS[name])
    return value.strip()


def _target(channel: str, target: object, allow_private: bool, resolve) -> str | None:
    if channel == "inapp":
        if target is not None:
            raise SubscriptionError("target", "subscription.inapp_target")
        return None
    target = _text("target", target)
    if channel == "email":
        try:
            _EMAIL(target)
        except ValidationError:
            raise SubscriptionError("target", "subscription.not_email") from None
        return target
    refused = url_problem(target, allow_private, resolve)
    if refused:
        raise SubscriptionError("target", refused)
    return target


def url_problem(url: str, allow_private: bool, resolve: Callable[..., list[str]] | None = None) -> Said | None:
    """Why ``url`` may not receive notifications, or None: not ``http(s)`` with a host, or a host that does
    not resolve, or resolves to an address that is not public (unless ``allow_private``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # brackets that hold no IPv6 address, a port that is no number from 0 to 65535
        return Said("subscription.not_a_url")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Said("subscription.http_url")
    if allow_private:
        return None
    try:
        found = (resolve or addresses)(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except OSError:
        return Said("subscription.no_such_host", host=repr(parts.hostname))
    inner = [a for a in found if not ipaddress.ip_address(a.split("%")[0]).is_global]
    if not found or inner:
        return Said("subscription.private_host", host=repr(parts.hostname), addresses=", ".join(inner) or "none")
    return None


def addresses(host: str, port: int = 443) -> list[str]:
    """Every address ``host`` resolves to (OSError when it does not)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})


def may_manage(identity, sub: Mapping, units: Units) -> bool:
    """Whether ``identity`` (a ``shared.auth.Identity``) may create, see or remove ``sub`` (its ``unit``,
    ``user`` and ``role``): see the module's "Who manages"."""
    role, unit, user = identity.role, sub.get("unit"), sub.get("user")
    if role == Role.ADMIN:
        return True
    if unit is None:
        return sub.get("role") is None and user is not None and user == identity.user
    if role in (Role.STATION, Role.SUBCENTER):
        return unit == identity.area
    if role == Role.DEPARTMENT:
        return unit == identity.department
    if role == Role.COMMAND:
        return unit == units.headquarters
    return False
