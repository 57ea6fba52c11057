"""Why the domain refuses an action. The API maps each to one status code:

| exception           | HTTP | meaning                                                          |
|---------------------|------|------------------------------------------------------------------|
| ``NotAllowed``      | 403  | this role, level or area may not take the action                 |
| ``InvalidTransition`` | 409 | the case's state does not allow it now (e.g. resolve a closed case) |
| ``InvalidArgument`` | 422  | the arguments are wrong (missing reason, a return to a level not below) |

Checks run in that order: who, then state, then arguments.

Each refusal is a ``shared.words.Problem``: it carries a message key of ``shared/words.toml`` and its
parameters, and ``shared.web`` answers it in the caller's language. A refusal raised with a text that
is not a key (``NotAllowed("…")``) keeps that English text in every language, under its class's code.
"""
import re

from shared.words import MESSAGES, Message, Problem, word


class Refused(Problem):
    """Base of every domain refusal; ``status`` is the HTTP status it maps to, ``code`` its message key,
    ``field`` the argument it is about (if one is). ``Refused("case.not_owner", area=…, doing=…)``, or
    ``Refused("an English text")`` for a refusal without a key yet."""

    status = 400
    code = "case.invalid_argument"

    def __init__(self, code_or_text: str, *, field: str | None = None, **params):
        if code_or_text not in MESSAGES:
            code_or_text, params = type(self).code, {"text": code_or_text}
        super().__init__(code_or_text, field=field, **params)


class NotAllowed(Refused):
    status = 403
    code = "case.not_allowed"


class InvalidTransition(Refused):
    status = 409
    code = "case.invalid_transition"


class InvalidArgument(Refused):
    status = 422
    code = "case.invalid_argument"


def phrase(kind: str, text: str) -> Message:
    """An English phrase of the domain (``"be resolved"``, ``"a reason"``) as the message
    ``kind.be_resolved`` that translates it; KeyError when ``shared/words.toml`` lacks it."""
    return Message(f"{kind}.{re.sub(r'[^a-z0-9]+', '_', text.lower()).strip('_')}")


def require_status(status: str, allowed: frozenset, doing: str) -> None:
    """InvalidTransition unless ``status`` is one of ``allowed`` (``doing``: a phrase of ``doing.*``)."""
    if status not in allowed:
        raise InvalidTransition("case.wrong_status", status=word("status", status), doing=phrase("doing", doing))


def photo_ids(photos: object) -> tuple[str, ...]:
    """A list of intake photo ids (at most 20, each 1–64 characters; ``after`` photos of a resolution or
    a department's feedback); InvalidArgument naming ``photos`` otherwise."""
    if not isinstance(photos, list | tuple) or len(photos) > 20 or not all(
            isinstance(p, str) and 0 < len(p) <= 64 for p in photos):
        raise InvalidArgument("case.photo_ids", field="photos")
    return tuple(photos)


def required_text(value: object, what: str, field: str) -> str:
    """The stripped text of argument ``field``; InvalidArgument when it is missing, not text, or blank."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument("case.required", field=field, what=phrase("what", what))
    return value.strip()
