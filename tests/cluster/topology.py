"""The topology the cluster tier's faults run against, and the loop's invariants checked after each fault.

``FullTopology``: gridcase as production scales it out, on the cluster (every node listed in its URLs) —
two gunicorn replicas of every API (intake, dispatch, escalation) behind nginx with ``deploy/nginx.conf``,
two workers of every service (consumers + outbox relay) and two schedulers, plus the notification worker.
Clients talk to the gateway only; a replica, worker or scheduler can be killed and started again by name.

``assert_loop_invariants``: what must hold after any fault, with every accepted report known:
- every accepted report is exactly one report, one dispatch and one case (by id, in every service), the
  queues are drained and nothing was dead-lettered;
- no case opened twice, no level escalated twice (timeline and the escalations table);
- the audit chain verifies (``gridcase audit verify``);
- the statistics agree with the timelines: one ``case_facts`` row per opened case whose escalated and
  overdue flags are what its timeline says, and the statistics API counts every case once."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import requests
import sqlalchemy as sa

from harness.processes import GRIDCASE, wait_for
from shared.db import make_engine
from tests.cluster.gateway import Gateway
from tests.faults.test_crashes import assert_invariants
from tests.support.system import Production, auth

SERVICES = ("intake", "dispatch", "escalation")


class FullTopology:
    """Two of everything behind nginx. ``replica_env``: service → extra environment of its second API
    replica (e.g. ``PGAPPNAME``, to see its requests in PostgreSQL). Process names: ``serve-<service>`` and
    ``serve-<service>-2``, ``worker-<service>`` and ``worker-<service>-2``, ``worker-scheduler`` and
    ``worker-scheduler-2``, ``gateway``."""

    def __init__(self, data: Path, broker_url: str, database_urls: dict[str, str], env: dict | None = None,
                 replica_env: dict[str, dict] | None = None):
        self.production = Production(data, broker_url, database_urls, env=env)
        self.replica_env = replica_env or {}
        self.replicas: dict[str, list[str]] = {}  # service → its API replicas as host:port
        self.gateway: Gateway | None = None

    def start(self) -> FullTopology:
        p = self.production
        p.start()
        second = {}
        for service in SERVICES:
            second[service] = self.start_replica(service)
            self.start_worker(service, 2)
        self.start_worker("scheduler", 2)
        for service, url in second.items():
            p.processes.wait_ready(f"serve-{service}-2", f"{url}/{service}/readyz", timeout=90)
        self.replicas = {s: [p.urls[s].removeprefix("http://"), second[s].removeprefix("http://")]
                         for s in SERVICES}
        self.gateway = Gateway(p.processes, self.replicas)
        self.url = self.gateway.start()
        return self

    def start_replica(self, service: str) -> str:
        """Start the second API replica of ``service`` (again, after a kill); returns its base URL."""
        p = self.production
        return p.processes.serve(f"serve-{service}-2",
                                 GRIDCASE + ["serve", service, "--workers", "1", "--data-dir", str(p.data)],
                                 {**p.env, **self.replica_env.get(service, {})})

    def start_worker(self, name: str, n: int, **env: str) -> None:
        """Start worker ``n`` (1 or 2) of ``name`` (a service or ``scheduler``), e.g. after a kill."""
        p = self.production
        suffix = "" if n == 1 else f"-{n}"
        p.processes.gridcase(f"worker-{name}{suffix}", ["worker", name, "--data-dir", str(p.data)],
                             {**p.env, "PGAPPNAME": f"gridcase-{name}-{n}", **env})

    def stop(self) -> None:
        self.production.processes.stop_all()
        if self.gateway is not None:
            self.gateway.remove()


def _scalars(production: Production, service: str, sql: str) -> list:
    engine = make_engine(production.env[f"GRIDCASE_{service.upper()}_DATABASE_URL"])
    try:
        with engine.connect() as db:
            return list(db.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


def assert_loop_invariants(production: Production, accepted: dict[str, str]) -> None:
    """The loop's invariants (module docstring) for ``accepted``: Idempotency-Key → report id of every
    report a client was answered 201 for."""
    expected = set(accepted.values())
    assert len(expected) == len(accepted), "a retried report was given a second id"
    assert_invariants(production, len(expected))  # counts equal, queues drained, no dead letter
    queries = {"intake": "SELECT id FROM reports", "dispatch": "SELECT case_id FROM dispatches",
               "escalation": "SELECT id FROM cases"}
    for service, sql in queries.items():
        found = {row[0] for row in _scalars(production, service, sql)}
        assert found == expected, f"{service}: {len(found - expected)} unknown, {len(expected - found)} missing"

    doubled = _scalars(production, "escalation", "SELECT case_id, type, level, count(*) FROM timeline "
                                                 "WHERE type IN ('opened', 'escalated') "
                                                 "GROUP BY case_id, type, level HAVING count(*) > 1")
    assert not doubled, f"opened or escalated twice: {doubled[:5]}"
    [(rows, distinct)] = _scalars(production, "escalation",
                                  "SELECT count(*), count(DISTINCT (case_id, level)) FROM escalations")
    assert rows == distinct, "a level's deadline fired twice"
    opened = _scalars(production, "escalation", "SELECT count(DISTINCT case_id) FROM timeline WHERE type = 'opened'")
    assert opened == [(len(expected),)]

    production.processes.run("audit-verify", GRIDCASE + ["audit", "verify", "--data-dir", str(production.data)],
                             production.env)

    wrong = _scalars(production, "escalation", """
        SELECT f.case_id, f.escalated, f.overdue FROM case_facts f
        WHERE f.escalated <> (EXISTS (SELECT 1 FROM timeline t WHERE t.case_id = f.case_id
                                      AND t.type = 'escalated'))::int
           OR f.overdue <> (EXISTS (SELECT 1 FROM timeline t WHERE t.case_id = f.case_id
                                    AND t.type = 'overdue'))::int""")
    assert not wrong, f"statistics rows that disagree with their timelines: {wrong[:5]}"
    [(facts,)] = _scalars(production, "escalation", "SELECT count(*) FROM case_facts")
    assert facts == len(expected), f"{facts} statistics rows for {len(expected)} cases"

    # what the statistics API answers (its rollups brought up to date by the read) against the timelines
    [(first, last)] = _scalars(production, "escalation", "SELECT min(opened_day), max(opened_day) FROM case_facts")
    command = production.token("command")

    def statistics() -> requests.Response | None:  # a 503 (database failing over) is retried, as a client does
        answer = requests.get(f"{production.urls['escalation']}/escalation/v1/stats/closure-times", timeout=30,
                              headers=auth(command), params={
                                  "group_by": "subcenter", "period": "day", "from": first.isoformat(),
                                  "to": (last + timedelta(days=1)).isoformat()})
        return None if answer.status_code == 503 else answer

    answer = wait_for(statistics, timeout=60, interval=1, message="the statistics to answer other than 503")
    assert answer.status_code == 200, answer.text[:500]
    rows = answer.json()["rows"]
    [(escalated, overdue)] = _scalars(production, "escalation", """
        SELECT count(DISTINCT case_id) FILTER (WHERE type = 'escalated'),
               count(DISTINCT case_id) FILTER (WHERE type = 'overdue') FROM timeline""")
    counted = (sum(r["opened"] for r in rows), round(sum((r["escalation_rate"] or 0) * r["opened"] for r in rows)),
               sum(r["overdue"] for r in rows))
    assert counted == (len(expected), escalated, overdue), \
        "the statistics count every case once, and each escalated or overdue case as such (opened, escalated, overdue)"
