"""What following escalation's events costs intake: ``python -m benchmarks.follow_batches [--postgres URL]``.

``CASES`` reports each take a life of ``len(LIFE)`` events (opened, acknowledged, resolved, reworked,
acknowledged, resolved: the columns each sets, and each column's revision key, kept per report), published
case after case in rounds and applied through ``handlers.follow_cases`` in batches of ``BATCH`` (the
consumer's batch size), as the ``intake.status`` consumer applies them; the inbox and the broker are not
in it. The figures are the median over ``ROUNDS`` runs of microseconds per message, elapsed and of this
process's CPU (the machine's other load moves the first more than the second), on a SQLite file, and on
PostgreSQL when ``--postgres`` or ``GRIDCASE_TEST_POSTGRES_URL`` names an admin URL (a throwaway database is
made and dropped).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime

from harness.servers import create_database, drop_database
from services.intake import handlers
from services.intake.domain.reports import NewReport
from services.intake.store import ReportStore
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.db import make_engine
from shared.messages import events
from shared.migrations import upgrade
from shared.owners import AreaRef, Owners
from shared.policy import load_policy
from shared.uow import UnitOfWork
from shared.vocabulary import Level

NOW = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
CASES = 1_000
BATCH = 200
ROUNDS = 5
OWNERS = Owners(grid=AreaRef("G1", "Grid 1"), station=AreaRef("S1", "Station 1"),
                subcenter=AreaRef("C1", "Sub-center 1"), hq=AreaRef("HQ", "City"))
LIFE = (("case.opened", "open"), ("case.acknowledged", "acknowledged"), ("case.resolved", "verifying"),
        ("case.reworked", "rework"), ("case.acknowledged", "acknowledged"), ("case.resolved", "verifying"))


def messages(case_ids: list[str]) -> list[events.CaseChanged]:
    """Every case's life, in rounds: each case's first event, then each one's second, …"""
    out = []
    for revision, (event, status) in enumerate(LIFE, start=1):
        detail = {"verifier_level": 1, "resolved_by": "li"} if event == "case.resolved" else {}
        out += [events.CaseChanged(event=event, case_id=case, status=status, level=Level.GRID,
                                   owner=OWNERS.owner(Level.GRID), at=NOW, revision=revision, detail=detail,
                                   scope=OWNERS if event == "case.opened" else None) for case in case_ids]
    return out


def us_per_message(url: str) -> tuple[float, float]:
    """(elapsed, CPU) microseconds per message, each the median over ``ROUNDS``."""
    engine = make_engine(url)
    upgrade(engine, "intake")
    clock = FakeClock(NOW)
    uow = UnitOfWork(engine, ReportStore, producer="intake", clock=clock)
    settings, policy = Settings(secret="x" * 40), load_policy()
    times, cpu = [], []
    for _ in range(ROUNDS):
        case_ids = [handlers.submit_report(NewReport("street_light", f"lamp {i}", 102.0 + i * 1e-3, 27.9),
                                           Identity("grid_worker", f"w{uuid.uuid4().hex}", area="G1"), None, uow,
                                           clock=clock, policy=policy, settings=settings).report.id
                    for i in range(CASES)]
        sent = messages(case_ids)
        started, started_cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(sent), BATCH):
            handlers.follow_cases(sent[start:start + BATCH], uow, clock=clock)
        times.append((time.perf_counter() - started) / len(sent) * 1e6)
        cpu.append((time.process_time() - started_cpu) / len(sent) * 1e6)
    engine.dispose()
    return statistics.median(times), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("GRIDCASE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        elapsed, cpu = us_per_message(f"sqlite:///{directory}/intake.db")
        print(f"follow_batches.sqlite {elapsed:.1f} us/message elapsed, {cpu:.1f} us/message CPU")
    if args.postgres:
        database = f"gridcase_follow_{uuid.uuid4().hex[:10]}"
        try:
            elapsed, cpu = us_per_message(create_database(args.postgres, database))
            print(f"follow_batches.postgres {elapsed:.1f} us/message elapsed, {cpu:.1f} us/message CPU (client)")
        finally:
            drop_database(args.postgres, database)


if __name__ == "__main__":
    main()
