"""Per-person limits (``services.intake.limits``): windows, refusals and what a process remembers of them.
The counting itself is the database's: ``tests/integration/test_limits.py`` and, with two gunicorn
workers, ``tests/e2e/test_production_limits.py``."""
import pytest

from services.intake.limits import Limits, OverLimit, RateLimit, precheck
from shared.auth import Identity

WORKER = Identity("grid_worker", "zhou", "G1")


def test_each_limit_proposes_a_window_opening_now_with_its_length_and_allowance():
    minute, day = RateLimit("report", "60/minute;1000/day").windows(1_800_000_123.4)
    assert (minute.start, minute.seconds, minute.cap, minute.end) == (1_800_000_123, 60, 60, 1_800_000_183)
    assert (day.start, day.seconds, day.cap) == (1_800_000_123, 86400, 1000)
    assert minute.key != day.key and minute.key.startswith("report:")


def test_a_refusal_says_the_allowance_and_how_long_to_wait():
    [window] = RateLimit("photo", "12/minute").windows(1_800_000_120.0)
    over = OverLimit("photo", window, 1_800_000_150.0)
    assert over.retry_after == 30 and "at most 12 photos per person per minute" in str(over)
    assert OverLimit("photo", window, 1_800_000_179.9).retry_after == 1, "never 0: Retry-After is whole seconds"


def test_a_process_refuses_again_before_the_body_until_the_window_ends():
    now = [1_800_000_150.0]
    limits = Limits("2/minute", "1/minute", now=lambda: now[0])
    [window] = limits.report.windows(now[0])
    limits.remember(limits.report, WORKER.user, window)
    with pytest.raises(OverLimit) as refused:
        precheck(limits, lambda x: x.report, WORKER)
    assert (refused.value.status, refused.value.code, refused.value.headers) == (
        429, "request.over_limit", {"Retry-After": "60"})
    assert refused.value.detail("zh") == "每人每分钟最多 2 次上报，请 60 秒后再试"
    precheck(limits, lambda x: x.photo, WORKER)  # another limit
    precheck(limits, lambda x: x.report, Identity("grid_worker", "wu", "G1"))  # another person
    precheck(limits, lambda x: x.report, WORKER, retry=lambda: True)  # the retry of a stored report
    now[0] = window.end
    precheck(limits, lambda x: x.report, WORKER)


def test_admins_are_not_limited():
    limits = Limits("1/minute", "1/minute")
    assert not limits.applies(Identity("admin", "root")) and limits.applies(WORKER)
