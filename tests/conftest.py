"""Shared fixtures. Servers come from the environment (see deploy/local/with-servers.sh):
``GRIDCASE_TEST_BROKER_URL`` (RabbitMQ) and ``GRIDCASE_TEST_POSTGRES_URL`` (an admin URL; each
test gets a database of its own). Without them those tests skip with a reason — except under
``CI=true``, where a missing server is a failure, never a skip.

A test that fails shows the end of the log of every process it started (harness.processes)."""
from __future__ import annotations

import uuid

import pytest

from harness.processes import forget_started, started_logs
from harness.servers import create_database, drop_database, purge_broker
from tests.support.system import required_server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        for heading, log in started_logs():
            report.sections.append((heading, log))
    if report.when == "teardown":
        forget_started()


@pytest.fixture
def broker_url():
    url = required_server("GRIDCASE_TEST_BROKER_URL")
    purge_broker(url)
    return url


@pytest.fixture
def postgres_admin_url():
    return required_server("GRIDCASE_TEST_POSTGRES_URL")


@pytest.fixture
def postgres_url(postgres_admin_url):
    name = f"gridcase_test_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_admin_url, name)
    yield url
    drop_database(postgres_admin_url, name)


@pytest.fixture
def postgres_urls(postgres_admin_url):
    """One database per service, as production has."""
    names = {s: f"gridcase_{s}_{uuid.uuid4().hex[:10]}" for s in ("intake", "dispatch", "escalation")}
    urls = {s: create_database(postgres_admin_url, n) for s, n in names.items()}
    yield urls
    for name in names.values():
        drop_database(postgres_admin_url, name)


@pytest.fixture
def production(tmp_path, broker_url, postgres_urls):
    """The production topology as separate processes (see ``tests.support.system.Production``)."""
    from tests.support.system import Production

    system = Production(tmp_path, broker_url, postgres_urls)
    try:
        yield system.start()
    finally:
        system.processes.stop_all()
