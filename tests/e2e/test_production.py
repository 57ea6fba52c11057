"""The production topology as plain processes: three gunicorn APIs, the workers and the scheduler,
on RabbitMQ and one PostgreSQL database per service."""
from __future__ import annotations

import uuid

import pytest
import requests

from harness.servers import queue_depth
from tests.support.system import a_point_in_grid, auth, consumers, token, wait_for_case

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def _where(broker_url, env) -> str:
    """Where a message stopped: unsent outbox rows per service and queue depths."""
    import sqlalchemy as sa

    from shared.db import make_engine
    state = {}
    for service in ("intake", "dispatch", "escalation"):
        engine = make_engine(env[f"GRIDCASE_{service.upper()}_DATABASE_URL"])
        with engine.connect() as db:
            state[service] = db.execute(sa.text("SELECT count(*), count(sent_at) FROM outbox")).one()
        engine.dispose()
    for queue in ("gridcase.dispatch.locate", "gridcase.escalation.open", "gridcase.dead-letter"):
        state[queue] = (queue_depth(broker_url, queue), consumers(broker_url, queue))
    return repr(state)


def test_a_report_reaches_level_one_through_rabbitmq_and_postgres_within_five_seconds(production, broker_url):
    urls, data, env = production.urls, production.data, production.env
    admin = token(data, "admin", env=env)
    grid, lon, lat = a_point_in_grid(urls["dispatch"], admin)
    worker = token(data, "grid_worker", env=env, area=grid, user="wang")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"category": "street_light", "description": "lamp out", "location": {"lon": lon, "lat": lat}}
    created = requests.post(f"{urls['intake']}/intake/v1/reports", json=body, headers=auth(worker, **key), timeout=5)
    assert created.status_code == 201, created.text
    try:
        case, _ = wait_for_case(urls["escalation"], created.json()["id"], worker, timeout=5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_where(broker_url, env)}") from None
    assert case["level"] == 1 and case["owner"]["area_id"] == grid and case["status"] == "open"
    retried = requests.post(f"{urls['intake']}/intake/v1/reports", json=body, headers=auth(worker, **key), timeout=5)
    assert retried.json()["id"] == created.json()["id"]
    listing = requests.get(f"{urls['escalation']}/escalation/v1/cases", headers=auth(admin), timeout=5).json()
    assert listing["total"] == 1
    for queue in ("gridcase.dispatch.locate", "gridcase.escalation.open", "gridcase.dead-letter"):
        assert queue_depth(broker_url, queue) == 0


def test_concurrent_reports_and_their_retries_make_exactly_one_case_each(production, broker_url):
    """I1–I4 over 40 reports, each sent twice at once with its key, through the production topology."""
    from concurrent.futures import ThreadPoolExecutor

    import sqlalchemy as sa

    from harness.processes import wait_for
    from shared.db import make_engine

    urls, data, env = production.urls, production.data, production.env
    admin = token(data, "admin", env=env)
    grid, lon, lat = a_point_in_grid(urls["dispatch"], admin, index=4)
    worker = token(data, "grid_worker", env=env, area=grid, user="li")

    def send(i):
        body = {"category": "illegal_dumping", "description": f"pile {i}", "location": {"lon": lon, "lat": lat}}
        headers = auth(worker, **{"Idempotency-Key": f"pile-{i}"})
        return requests.post(f"{urls['intake']}/intake/v1/reports", json=body, headers=headers, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, [i // 2 for i in range(80)]))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 40

    engines = {s: make_engine(env[f"GRIDCASE_{s.upper()}_DATABASE_URL"]) for s in ("intake", "dispatch", "escalation")}

    def count(service, sql):
        with engines[service].connect() as db:
            return db.execute(sa.text(sql)).scalar()

    try:
        wait_for(lambda: count("escalation", "SELECT count(*) FROM cases") == 40, timeout=20, message="40 cases")
        assert count("intake", "SELECT count(*) FROM reports") == 40
        assert count("dispatch", "SELECT count(DISTINCT case_id) FROM dispatches") == 40
        assert count("escalation", "SELECT count(*) FROM cases WHERE level = 1 AND status = 'open'") == 40
        for service in engines:
            wait_for(lambda s=service: count(s, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0,
                     message=f"{service} outbox drained")
        for queue in ("gridcase.dispatch.locate", "gridcase.escalation.open", "gridcase.dead-letter"):
            assert queue_depth(broker_url, queue) == 0
    finally:
        for engine in engines.values():
            engine.dispose()
