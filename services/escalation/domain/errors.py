"""Why the domain refuses an action. The API maps each to one status code:

| exception           | HTTP | meaning                                                          |
|---------------------|------|------------------------------------------------------------------|
| ``NotAllowed``      | 403  | this role, level or area may not take the action                 |
| ``InvalidTransition`` | 409 | the case's state does not allow it now (e.g. resolve a closed case) |
| ``InvalidArgument`` | 422  | the arguments are wrong (missing reason, a return to a level not below) |

Checks run in that order: who, then state, then arguments.
"""


class Refused(Exception):
    """Base of every domain refusal; ``status`` is the HTTP status it maps to, ``field`` the argument
    it is about (if one is)."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotAllowed(Refused):
    status = 403


class InvalidTransition(Refused):
    status = 409


class InvalidArgument(Refused):
    status = 422


def require_status(status: str, allowed: frozenset, doing: str) -> None:
    """InvalidTransition unless ``status`` is one of ``allowed``."""
    if status not in allowed:
        raise InvalidTransition(f"a {status} case cannot {doing}")


def photo_ids(photos: object) -> tuple[str, ...]:
    """A list of intake photo ids (at most 20, each 1–64 characters; ``after`` photos of a resolution or
    a department's feedback); InvalidArgument naming ``photos`` otherwise."""
    if not isinstance(photos, list | tuple) or len(photos) > 20 or not all(
            isinstance(p, str) and 0 < len(p) <= 64 for p in photos):
        raise InvalidArgument("photos is a list of at most 20 photo ids", field="photos")
    return tuple(photos)


def required_text(value: object, what: str, field: str) -> str:
    """The stripped text of argument ``field``; InvalidArgument when it is missing, not text, or blank."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what} is required", field=field)
    return value.strip()
