"""Per-person report limits on the in-process storage: counts, expiry, and no thread per count."""
import threading
import time

import pytest
from flask import Flask
from werkzeug.exceptions import HTTPException

from services.intake.limits import ProcessMemoryStorage, ReportLimits
from shared.auth import Identity


def limits(spec: str) -> ReportLimits:
    return ReportLimits(spec, "memory://")


def test_memory_means_the_storage_that_starts_no_thread_per_count(monkeypatch):
    report_limits = limits("1000/minute")
    assert isinstance(report_limits.storage, ProcessMemoryStorage)
    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self))
    worker = Identity("grid_worker", "zhou", "G1")
    for _ in range(50):
        report_limits.check(worker)
        report_limits.count(worker)
    assert started == []


def test_a_persons_count_stops_them_at_the_limit_and_ends_with_its_window():
    app = Flask("t")
    report_limits = limits("2/second")
    worker, other = Identity("grid_worker", "zhou", "G1"), Identity("grid_worker", "wu", "G1")
    for _ in range(2):
        report_limits.check(worker)
        report_limits.count(worker)
    with app.test_request_context(), pytest.raises(HTTPException) as refused:
        report_limits.check(worker)
    assert refused.value.code == 429
    report_limits.check(other)  # counted per person
    time.sleep(1.05)
    report_limits.check(worker)
