"""Per-person rate limits on filing reports (flask-limiter's storage and strategies).

A buggy phone, or a stolen token, must not flood the loop with cases: each person (the token's subject)
may file ``Settings.report_rate_limit`` new reports (flask-limiter notation, default
``60/minute;1000/day``); beyond it ``429`` with ``Retry-After`` (seconds until the window resets).
The count is kept in ``Settings.rate_limit_storage``: ``memory://`` embedded (one process), a shared
store (``redis://…``, ``memcached://…``) in production, where gunicorn runs several workers.
Admins are not limited (imports, integrations and load tests file as admin). The limit is checked
before the body is read, and a report counts once it is stored: a retry of a stored report (same
Idempotency-Key, a phone on a bad network) and a refused body do not use up the allowance.
"""
from __future__ import annotations

import math
import time

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_smorest import abort
from limits import parse_many

from shared.vocabulary import Role

EXTENSION = "gridcase_report_limits"


class ReportLimits:
    def __init__(self, app: Flask, limits: str, storage_uri: str):
        self.items = parse_many(limits)
        self.limiter = Limiter(key_func=lambda: "", app=app, storage_uri=storage_uri, default_limits=[],
                               key_prefix="gridcase")
        # Every request is exempt from flask-limiter's own hook: the limits apply where ``check`` is
        # called (the report route), and the hook's search for limits cost 0.2 ms of every request.
        self.limiter.request_filter(lambda: True)

    @classmethod
    def install(cls, app: Flask, settings) -> ReportLimits:
        """Attach the limits of ``settings`` to intake's ``app``."""
        app.extensions[EXTENSION] = limits = cls(app, settings.report_rate_limit, settings.rate_limit_storage)
        return limits

    def check(self, identity) -> None:
        """Abort ``429`` with ``Retry-After`` when ``identity`` has used up a limit (admins: never)."""
        if identity.role == Role.ADMIN:
            return
        for item in self.items:
            if not self.limiter.limiter.test(item, "report", identity.user):
                reset = self.limiter.limiter.get_window_stats(item, "report", identity.user).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                abort(429, message=f"at most {item} reports per person; retry in {wait} s",
                      headers={"Retry-After": str(wait)})

    def count(self, identity) -> None:
        """Count one new report by ``identity``."""
        if identity.role != Role.ADMIN:
            for item in self.items:
                self.limiter.limiter.hit(item, "report", identity.user)


def check_reports(identity) -> None:
    """``ReportLimits.check`` on the running app's limits (nothing when none are installed)."""
    limits = current_app.extensions.get(EXTENSION)
    if limits is not None:
        limits.check(identity)


def count_report(identity) -> None:
    """``ReportLimits.count`` on the running app's limits (nothing when none are installed)."""
    limits = current_app.extensions.get(EXTENSION)
    if limits is not None:
        limits.count(identity)
