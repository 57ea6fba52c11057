"""Per-person limits and a report's photo cap hold under concurrency, on SQLite and PostgreSQL: the count
is the database's (``services.intake.limits``), so threads — and, in ``tests/e2e/test_production_limits.py``,
gunicorn workers — share one allowance."""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from harness.servers import create_database, drop_database
from services.intake import bootstrap, handlers
from services.intake.domain.reports import NewReport
from services.intake.limits import OverLimit
from services.intake.store import rate_counts
from shared.auth import Identity
from shared.config import Settings
from tests.support.images import jpeg
from tests.support.system import required_server

WORKER = Identity("grid_worker", "zhou", "G1")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A database of its own for intake, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/intake.db"
        return
    admin, database = required_server("GRIDCASE_TEST_POSTGRES_URL"), f"gridcase_limits_{uuid.uuid4().hex[:10]}"
    yield create_database(admin, database)
    drop_database(admin, database)


def build(url, folder, photo_rate_limit="6/minute", report_rate_limit="10/minute;25/day"):
    return bootstrap.build(Settings(database_urls={"intake": url}, secret="x" * 32, photo_dir=folder / "photos",
                                    report_rate_limit=report_rate_limit, photo_rate_limit=photo_rate_limit),
                           web=False)


@pytest.fixture
def intake(database_url, tmp_path):
    """Intake's service (no web) with tight limits: 10 reports a minute, 6 photos a minute."""
    service = build(database_url, tmp_path)
    yield service
    service.engine.dispose()


def file(service, n: int, key: str | None = None, who: Identity = WORKER):
    try:
        return service.run(handlers.submit_report, NewReport("street_light", f"lamp {n}", 102.26, 27.89), who, key)
    except OverLimit as exc:
        return exc


def stored_reports(service, who: Identity = WORKER) -> int:
    return service.run(handlers.my_reports, who, 1, 500)[1]


def test_a_burst_of_100_reports_from_40_threads_stores_exactly_the_allowance(intake):
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda n: file(intake, n), range(100)))

    assert sum(not isinstance(a, OverLimit) for a in answers) == 10
    refused = [a for a in answers if isinstance(a, OverLimit)]
    assert len(refused) == 90 and all(1 <= a.retry_after <= 60 for a in refused)
    assert stored_reports(intake) == 10
    assert not isinstance(file(intake, 0, who=Identity("grid_worker", "wu", "G1")), OverLimit), "per person"


def test_retries_of_stored_reports_use_nothing_and_are_answered_over_the_limit(intake):
    first = file(intake, 0, key="k0")
    for _ in range(15):
        again = file(intake, 0, key="k0")
        assert again.report.id == first.report.id and not again.created
    for n in range(1, 10):
        assert file(intake, n).created
    assert isinstance(file(intake, 99), OverLimit)
    assert file(intake, 0, key="k0").report.id == first.report.id, "a retry is answered whatever the count"
    assert stored_reports(intake) == 10


def test_a_refused_body_uses_no_allowance(intake):
    for _ in range(12):
        with pytest.raises(handlers.UnknownCategory):
            intake.run(handlers.submit_report, NewReport("no_such_category", "x", 102.26, 27.89), WORKER, None)
    assert sum(file(intake, n).created for n in range(10)) == 10


def test_a_full_window_counts_nothing_in_the_others(database_url, tmp_path):
    service = build(database_url, tmp_path, report_rate_limit="100/minute;3/day")  # the day is full first
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: file(service, n), range(12)))
        assert sum(not isinstance(a, OverLimit) for a in answers) == 3
        with service.engine.connect() as connection:
            counts = dict(connection.execute(sa.select(rate_counts.c.cap, rate_counts.c.count).where(
                rate_counts.c.subject == WORKER.user)).all())
        assert counts == {100: 3, 3: 3}, "the refused reports were not counted in the minute's window"
    finally:
        service.engine.dispose()


def test_a_refusal_waits_for_the_full_window_not_one_the_refused_report_would_have_filled(database_url, tmp_path):
    service = build(database_url, tmp_path, report_rate_limit="2/day;1/minute")  # counted in this order
    try:
        assert file(service, 0).created
        refused = file(service, 1)  # the day's second use (its last) is counted, then the minute is full
        assert isinstance(refused, OverLimit)
        assert refused.retry_after <= 60, "the minute is full; the day, once the count is rolled back, is not"
        with service.engine.connect() as connection:
            counts = dict(connection.execute(sa.select(rate_counts.c.cap, rate_counts.c.count).where(
                rate_counts.c.subject == WORKER.user)).all())
        assert counts == {2: 1, 1: 1}
    finally:
        service.engine.dispose()


def test_20_concurrent_photos_store_at_most_the_reports_10(database_url, tmp_path):
    intake = build(database_url, tmp_path, photo_rate_limit="100/minute")
    report = file(intake, 0).report
    start = threading.Barrier(20)

    def upload(n):
        start.wait()
        try:
            return intake.run(handlers.add_photo, handlers.AddPhoto(report.id, jpeg(40 + n, 30), WORKER))
        except handlers.TooManyPhotos as exc:
            return exc

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(upload, range(20)))

    assert sum(isinstance(a, tuple) for a in answers) == handlers.MAX_PHOTOS
    assert len(intake.run(handlers.report_photos, report.id, WORKER)) == handlers.MAX_PHOTOS
    files = list(intake.settings.photo_dir.iterdir())
    assert len(files) == 2 * handlers.MAX_PHOTOS, "a refused photo leaves no file behind"
    intake.engine.dispose()


def test_the_photo_rate_holds_across_threads_and_a_refused_upload_is_given_back(intake):
    reports = [file(intake, n).report for n in range(3)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda n: _upload(intake, reports[n % 3].id, jpeg(40 + n, 30)), range(12)))

    assert sum(isinstance(a, tuple) for a in answers) == 6
    assert all(isinstance(a, OverLimit) for a in answers if not isinstance(a, tuple))


def _upload(service, report_id, data):
    try:
        return service.run(handlers.add_photo, handlers.AddPhoto(report_id, data, WORKER))
    except OverLimit as exc:
        return exc
