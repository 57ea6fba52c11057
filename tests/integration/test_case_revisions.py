"""Two intake workers on RabbitMQ follow escalation's events for the same cases at once: no report's case
revision (and so its status) ever goes backwards, and events overtaken by newer ones — republished with
new message ids, so the inbox does not absorb them — change nothing."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from kombu import Connection, Producer

from harness.processes import Processes, wait_for
from harness.servers import queue_depth
from services.intake import handlers as intake
from services.intake.domain.reports import NewReport
from services.intake.store import ReportStore, reports
from shared import bus
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.db import make_engine
from shared.inbox import inbox
from shared.messages import make_message
from shared.messages.events import CaseChanged, OwnerRef
from shared.migrations import upgrade
from shared.owners import Owners
from shared.policy import load_policy
from shared.uow import UnitOfWork
from shared.vocabulary import Level
from tests.support.system import consumers

pytestmark = pytest.mark.rabbitmq

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
QUEUE = bus.SUBSCRIPTIONS["intake.status"].queue_name
#: A case's life as escalation publishes it: (event, status after it), revision 1, 2, …
LIFE = [("case.opened", "open"), ("case.acknowledged", "acknowledged"), ("case.resolved", "verifying"),
        ("case.reopened", "rework"), ("case.acknowledged", "acknowledged"), ("case.resolved", "verifying"),
        ("case.closed", "closed")]
CASES = 120


def event(case_id: str, revision: int) -> CaseChanged:
    name, status = LIFE[revision - 1]
    return CaseChanged(event=name, case_id=case_id, status=status, level=Level.GRID,
                       owner=OwnerRef(Level.GRID, "G1", "Grid"), at=NOW, revision=revision,
                       scope=Owners.from_ids({"grid": "G1", "station": "S1"}) if revision == 1 else None)


def publish(url: str, messages: list[CaseChanged]) -> None:
    """As escalation's relay does: the envelope's JSON, routed by its type, with its id, each publish
    confirmed by the broker (without confirms, a message in flight when the connection closes may never
    reach the quorum queue, and the test would wait for it forever)."""
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.default_channel, exchange=bus.EXCHANGE)
        for message in messages:
            envelope = make_message(message, occurred_at=NOW, producer="escalation")
            producer.publish(envelope.to_json(), routing_key=envelope.type, message_id=envelope.id, delivery_mode=2,
                             content_type="application/json", content_encoding="utf-8")


def handled(engine) -> int:
    with engine.connect() as db:
        return db.execute(sa.select(sa.func.count()).select_from(inbox)
                          .where(inbox.c.consumer == "intake.status")).scalar_one()


def revisions(engine) -> dict[str, tuple]:
    with engine.connect() as db:
        return {r.id: (r.case_revision or 0, r.status) for r in db.execute(
            sa.select(reports.c.id, reports.c.case_revision, reports.c.status))}


def test_two_intake_workers_never_move_a_report_backwards(tmp_path, broker_url, postgres_urls):
    engine = make_engine(postgres_urls["intake"])
    upgrade(engine, "intake")
    uow = UnitOfWork(engine, ReportStore, producer="intake", clock=FakeClock(NOW))
    settings = Settings(secret="x" * 32)
    case_ids = [intake.submit_report(NewReport("street_light", f"lamp {i}", 102.26, 27.89),
                                     Identity("grid_worker", f"w{i}", area="G1"), None, uow, clock=FakeClock(NOW),
                                     policy=load_policy(), settings=settings).report.id for i in range(CASES)]
    with Connection(broker_url) as connection:
        bus.declare_topology(connection, 5)
    env = {"GRIDCASE_BROKER_URL": broker_url, "GRIDCASE_SECRET": "s" * 40,
           **{f"GRIDCASE_{s.upper()}_DATABASE_URL": url for s, url in postgres_urls.items()}}
    processes = Processes(tmp_path)
    seen: dict[str, tuple] = {}
    backwards: list[str] = []
    done = threading.Event()

    def watch() -> None:  # every report's revision, sampled while the workers run: it only ever grows
        while not done.is_set():
            for case_id, (revision, status) in revisions(engine).items():
                if revision < seen.get(case_id, (0, ""))[0]:
                    backwards.append(f"{case_id}: {seen[case_id]} → {(revision, status)}")
                seen[case_id] = (revision, status)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        for n in (1, 2):
            processes.gridcase(f"worker-intake-{n}", ["worker", "intake", "--data-dir", str(tmp_path)], env)
        wait_for(lambda: consumers(broker_url, QUEUE) == 2, timeout=60, message="two intake workers",
                 watch=processes)
        watcher.start()
        # Each case's whole life in order, the cases interleaved: the two workers share every case's events.
        life = [event(case_id, revision) for revision in range(1, len(LIFE) + 1) for case_id in case_ids]
        publish(broker_url, life)
        wait_for(lambda: handled(engine) == len(life), timeout=120, message="every event handled", watch=processes)
        assert revisions(engine) == {case_id: (len(LIFE), "closed") for case_id in case_ids}
        # Then what a crashed producer's retry or a slow relay delivers late: older events, new message ids.
        late = [event(case_id, revision) for revision in range(len(LIFE) - 1, 0, -1) for case_id in case_ids]
        publish(broker_url, late)
        wait_for(lambda: handled(engine) == len(life) + len(late), timeout=120, message="the late events handled",
                 watch=processes)
        assert queue_depth(broker_url, QUEUE) == 0
        assert revisions(engine) == {case_id: (len(LIFE), "closed") for case_id in case_ids}
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join(5)
        processes.stop_all()
        engine.dispose()
    assert backwards == [], backwards[:5]
    for n in (1, 2):  # both workers took a share of the events
        assert any('"handled"' in line and '"intake.status"' in line
                   for line in processes.log(f"worker-intake-{n}").splitlines()), f"worker {n} handled nothing"
