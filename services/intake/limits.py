"""Per-person rate limits on filing reports and on uploading photos, counted in intake's own database, so
that they hold across threads, gunicorn workers and hosts alike.

A buggy phone, or a stolen token, must not flood the loop with cases: each person (the token's subject)
may file ``Settings.report_rate_limit`` new reports (the notation of ``limits``, the library under
flask-limiter, which parses it: default ``60/minute;1000/day``) and upload ``Settings.photo_rate_limit``
photos (default ``12/minute;300/day``: each photo costs a bounded decode, ``services.intake.photos``, so
the rate bounds the CPU one person's uploads can take, while a report's burst of photos, at most 10,
still goes through in a minute). Beyond either, ``429`` with ``Retry-After`` (seconds until the window
ends). Admins are not limited (imports, integrations and load tests file as admin).

**Where the count is kept**: a row per person and limit in intake's database (``rate_counts``: the
window's start, its length, its count and its cap), raised by a conditional upsert per limit —
``INSERT … ON CONFLICT DO UPDATE SET count = count + 1 … WHERE count < cap`` — in a transaction rolled
back when a limit was full (every limit counts the use, or none), which the database serialises per row
(PostgreSQL's row lock, held until the transaction ends; SQLite's single writer). Of any number of
requests at once, in any number of processes, exactly the allowance is counted; the others are refused.
Windows are fixed, as ``limits``' fixed window: one starts with a person's first use after the last one
ended and lasts its length (``60/minute``: 60 uses in the minute from the first), in real time.

**Counted once stored**: a report is counted in the transaction that writes it (on PostgreSQL one
statement upserts the counts and inserts the report and its message, ``store.ReportStore.add``): counted
if and only if stored — a retry of a stored report, or a full window, leaves every count as it was. A
photo's use is reserved before the work it allows (its decode, in no transaction) and given back when
nothing was stored after all (a retry of a stored photo, a damaged image), so a refused request does not
use up the allowance while the bound holds at every moment. A retry of a stored report or photo (its
Idempotency-Key) is answered whatever the count.

**Before the body is read**: a process remembers whom it refused, or whose allowance it used up, and
until when (``Limits.refused``), and refuses them again at once without reading the body; another
process learns it from the database when it counts. The database stays the one authority.

Why not the ``limits`` storages (memory, Redis, memcached): the in-process one counts per process (each
gunicorn worker its own allowance), a shared one needs another server in every deployment, and neither
is in the transaction that decides whether a report was stored.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from limits import parse_many

from shared.vocabulary import Role
from shared.words import Message, Problem, word


@dataclass(frozen=True)
class Window:
    """One limit's window for a person: ``key`` names the limit (``report:60/1/minute``), ``start`` is
    when the window began (whole seconds since 1970; for a window to open, now), ``seconds`` its length,
    ``cap`` the allowance and ``count`` the uses counted in it."""

    key: str
    start: int
    seconds: int
    cap: int
    count: int = 0

    @property
    def end(self) -> int:
        return self.start + self.seconds


class OverLimit(Problem):
    """A person has used up a limit (429, with ``Retry-After``): ``retry_after`` seconds until its
    window ends."""

    status, code = 429, "request.over_limit"

    def __init__(self, kind: str, window: Window, now: float):
        # at most the window's length: another process may have opened it a moment after ``now`` was read
        retry_after = min(window.seconds, max(1, math.ceil(window.end - now)))
        super().__init__(headers={"Retry-After": str(retry_after)}, cap=window.cap, kind=word("limit", kind),
                         span=_span(window.seconds), retry_after=retry_after)
        self.kind, self.window, self.retry_after = kind, window, retry_after


def _span(seconds: int) -> Message:
    """A window's length as words: ``hour``, ``2 hours``, ``90 s``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return Message(f"span.{unit}") if count == 1 else Message(f"span.{unit}s", {"count": count})
    return Message("span.seconds", {"count": seconds})


@lru_cache(maxsize=32)
def _items(spec: str) -> tuple:
    return tuple(parse_many(spec))


class RateLimit:
    """One kind of use (``report`` or ``photo``) and its limits (``limits`` notation, ``;``-separated)."""

    def __init__(self, kind: str, spec: str):
        self.kind = kind
        self.items = _items(spec)

    def windows(self, now: float) -> list[Window]:
        """A window of each limit that would open at ``now`` (seconds since 1970), if the person's last
        one has ended (``store.use_allowance`` decides)."""
        return [Window(f"{self.kind}:{item.amount}/{item.multiples}/{item.GRANULARITY.name}", int(now),
                       int(item.get_expiry()), int(item.amount)) for item in self.items]


class Limits:
    """The service's limits (built from ``Settings``), its clock for windows (real time), and what this
    process remembers of whom it refused (the check before a body is read)."""

    def __init__(self, report_spec: str, photo_spec: str, now: Callable[[], float] = time.time):
        self.report, self.photo = RateLimit("report", report_spec), RateLimit("photo", photo_spec)
        self.now = now
        self._refused: dict[tuple[str, str], Window] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings) -> Limits:
        return cls(settings.report_rate_limit, settings.photo_rate_limit)

    def applies(self, identity) -> bool:
        return identity.role != Role.ADMIN

    def remember(self, limit: RateLimit, subject: str, window: Window) -> None:
        with self._lock:
            self._refused[(limit.kind, subject)] = window

    def forget(self, limit: RateLimit, subject: str) -> None:
        with self._lock:
            self._refused.pop((limit.kind, subject), None)

    def refused(self, limit: RateLimit, subject: str) -> OverLimit | None:
        """The refusal this process gave ``subject`` for ``limit`` if its window has not ended."""
        now = self.now()
        with self._lock:
            window = self._refused.get((limit.kind, subject))
            if window is not None and window.end <= now:
                del self._refused[(limit.kind, subject)]
                window = None
        return OverLimit(limit.kind, window, now) if window is not None else None


def refuse(exc: OverLimit):
    """Answer ``429`` with the refusal's reason and ``Retry-After`` (``shared.web`` renders it)."""
    raise exc


def precheck(limits: Limits | None, limit_of: Callable[[Limits], RateLimit], identity,
             retry: Callable[[], bool] = lambda: False) -> None:
    """Before a body is read: ``429`` if this process refused ``identity`` for that limit and the
    window has not ended, unless ``retry()`` says the request is a retry of something stored."""
    if limits is None or not limits.applies(identity):
        return
    over = limits.refused(limit_of(limits), identity.user)
    if over is not None and not retry():
        refuse(over)
