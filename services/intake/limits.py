"""Per-person rate limits on filing reports and on uploading photos, counted with ``limits`` (the
rate-limit library under flask-limiter).

Photos (``PhotoLimits``, ``Settings.photo_rate_limit``, default ``12/minute;300/day``) are limited on
their own: each one costs intake a bounded decode (``services.intake.photos``: at most 16 megapixels;
its CPU time in benchmarks/RESULTS.md, ``photos.*``), so the rate bounds the CPU one person's
uploads can take, while a report's burst of photos (at most 10) still goes through in a minute. They
follow the rules below: counted once stored, checked before the body is read, a retry of a stored
photo (its Idempotency-Key) answered whatever the count, admins not limited.

A buggy phone, or a stolen token, must not flood the loop with cases: each person (the token's subject)
may file ``Settings.report_rate_limit`` new reports (``limits`` notation, default ``60/minute;1000/day``,
fixed windows); beyond it ``429`` with ``Retry-After`` (seconds until the window resets). The count is
kept in ``Settings.rate_limit_storage``: ``memory://`` embedded (one process), a shared store
(``redis://…``, ``memcached://…``) in production, where gunicorn runs several workers. Admins are not
limited (imports, integrations and load tests file as admin). The limit is checked before the body is
read, and a report counts once it is stored: a retry of a stored report (same Idempotency-Key, a phone
on a bad network) and a refused body do not use up the allowance.

Why not flask-limiter itself: its limits are per route and per request, while a report counts only once
stored, so it served only as a holder of these same ``limits`` objects, and its hooks still ran on every
request of every route (0.06 ms each, cProfile). ``memory://`` is ``ProcessMemoryStorage``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

from flask import Flask, current_app
from flask_smorest import abort
from limits import parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from shared.vocabulary import Role

EXTENSION = "gridcase_report_limits"


class ProcessMemoryStorage(MemoryStorage):
    """limits' in-memory storage, without the thread it starts 10 ms after every count to drop
    expired keys: under load that is a new thread every few reports, and it cost intake a tenth of
    its throughput (``make bench``: 803 against 887 reports/s without limits). A count is checked for
    expiry whenever it is read (``get``), so dropping expired keys is only about memory: one key per
    limit and person, a few thousand in a city."""

    STORAGE_SCHEME = ["gridcase-memory"]

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.get(key)  # drops the count if its window has passed
        with self.locks[key]:
            self.storage[key] += amount
            if self.storage[key] == amount:
                self.expirations[key] = time.time() + expiry
        return self.storage.get(key, 0)


class ReportLimits:
    """Reports per person (``Settings.report_rate_limit``)."""

    KIND, EXTENSION, SETTING = "report", EXTENSION, "report_rate_limit"

    def __init__(self, limits: str, storage_uri: str):
        self.items = parse_many(limits)
        if storage_uri.startswith("memory://"):
            storage_uri = "gridcase-" + storage_uri
        self.storage = storage_from_string(storage_uri)
        self.limiter = FixedWindowRateLimiter(self.storage)

    @classmethod
    def install(cls, app: Flask, settings) -> ReportLimits:
        """Attach the limits of ``settings`` to intake's ``app``."""
        app.extensions[cls.EXTENSION] = limits = cls(getattr(settings, cls.SETTING), settings.rate_limit_storage)
        return limits

    def check(self, identity, retry: Callable[[], bool] = lambda: False) -> None:
        """Abort ``429`` with ``Retry-After`` when ``identity`` has used up a limit (admins: never),
        unless ``retry()`` says the request is a retry of a report already stored: a phone that lost
        the answer gets it, whatever the limit (asked only when the limit is used up)."""
        if identity.role == Role.ADMIN:
            return
        for item in self.items:
            if not self.limiter.test(item, "gridcase", self.KIND, identity.user):
                if retry():
                    return
                reset = self.limiter.get_window_stats(item, "gridcase", self.KIND, identity.user).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                abort(429, message=f"at most {item} {self.KIND}s per person; retry in {wait} s",
                      headers={"Retry-After": str(wait)})

    def count(self, identity) -> None:
        """Count one new report by ``identity``."""
        if identity.role != Role.ADMIN:
            for item in self.items:
                self.limiter.hit(item, "gridcase", self.KIND, identity.user)


class PhotoLimits(ReportLimits):
    """Photo uploads per person (``Settings.photo_rate_limit``)."""

    KIND, EXTENSION, SETTING = "photo", "gridcase_photo_limits", "photo_rate_limit"


def check_photos(identity, retry: Callable[[], bool] = lambda: False) -> None:
    """``PhotoLimits.check`` on the running app's limits (nothing when none are installed)."""
    limits = current_app.extensions.get(PhotoLimits.EXTENSION)
    if limits is not None:
        limits.check(identity, retry)


def count_photo(identity) -> None:
    """``PhotoLimits.count`` on the running app's limits (nothing when none are installed)."""
    limits = current_app.extensions.get(PhotoLimits.EXTENSION)
    if limits is not None:
        limits.count(identity)


def check_reports(identity, retry: Callable[[], bool] = lambda: False) -> None:
    """``ReportLimits.check`` on the running app's limits (nothing when none are installed)."""
    limits = current_app.extensions.get(EXTENSION)
    if limits is not None:
        limits.check(identity, retry)


def count_report(identity) -> None:
    """``ReportLimits.count`` on the running app's limits (nothing when none are installed)."""
    limits = current_app.extensions.get(EXTENSION)
    if limits is not None:
        limits.count(identity)
