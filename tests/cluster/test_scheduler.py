"""Two schedulers on the cluster (beside two replicas of every API behind nginx and two workers of every
service: ``topology.FullTopology``), one SIGKILLed in the middle of a tick: no deadline step is lost or fired
twice. The clock runs ``SCALE`` times faster (every process shares its anchor) with the calendar-hour policy,
so a case climbs grid → station → sub-center → headquarters and is marked overdue there within
``CLIMB`` real seconds. The cases are opened while no scheduler runs, so that the schedulers' first tick has
all of them to climb at once; the victim is killed when PostgreSQL shows its transaction holding the
escalations table's row lock, that is after it has written steps and before it has committed them (a moment
seen, not guessed). It is started again at once, as compose or systemd would, and more cases are opened, so
that deadlines also come due after the restart. Measured: how soon after the kill a deadline fired again,
and how late a deadline due after the kill fired.

(tests/integration/test_scheduler.py covers several schedulers in one process sharing the due cases, and a
scheduler back from an outage climbing every missed deadline on the original schedule; this is the same
with processes killed on real engines.)"""
from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from harness.processes import wait_for
from services.escalation.store import escalations
from shared.clock import ScaledClock, parse_time
from shared.db import make_engine
from tests.cluster.conftest import outages
from tests.cluster.topology import FullTopology, assert_loop_invariants
from tests.faults.test_crashes import post_reports
from tests.support.system import ROOT

SCALE = 28800.0  # a service hour is 0.125 real seconds
POLICY = ROOT / "tests" / "support" / "calendar_hours_policy.toml"
HOURS = {1: 4, 2: 8, 3: 24, 4: 48}  # hours allowed per level (the policy's default, road_damage's)
CLIMB = sum(HOURS.values()) * 3600 / SCALE  # real seconds from opening to overdue at headquarters
CASES = 60  # opened before the schedulers start
LATER = 20  # opened after the kill and the restart


@pytest.fixture
def fast_system(tmp_path, cluster):
    anchor = datetime.now(UTC).isoformat()
    topology = FullTopology(tmp_path, cluster.broker_url, cluster.databases(), env={
        "GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_CLOCK_ANCHOR": anchor, "GRIDCASE_POLICY_FILE": str(POLICY)})
    try:
        yield topology.start()
    finally:
        topology.stop()


def scheduler(n: int) -> str:
    """The process name of scheduler ``n`` (its connections are named ``gridcase-scheduler-<n>``)."""
    return "worker-scheduler" if n == 1 else f"worker-scheduler-{n}"


def writing_scheduler(engine) -> int | None:
    """The number of the scheduler whose open transaction has written to the escalations table, if any."""
    with engine.connect() as db:
        names = db.execute(sa.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND c.relname = 'escalations' AND l.mode = 'RowExclusiveLock' AND l.granted "
            "AND a.application_name LIKE 'gridcase-scheduler-%' AND a.backend_xid IS NOT NULL")).scalars().all()
    return int(names[0].rsplit("-", 1)[1]) if names else None


def scheduler_steps(engine) -> dict[str, list[tuple[str, int, datetime | None]]]:
    """case id → its steps as (type, level, scheduled_at), in order."""
    steps = defaultdict(list)
    with engine.connect() as db:
        for case_id, type_, level, scheduled_at, at in db.execute(sa.text(
                "SELECT case_id, type, level, scheduled_at, at FROM timeline ORDER BY case_id, id")):
            steps[case_id].append((type_, level, scheduled_at if type_ != "opened" else at))
    return steps


def test_a_scheduler_killed_mid_tick_loses_and_doubles_no_deadline_step(cluster, fast_system):
    topology = fast_system
    system = topology.production
    clock = ScaledClock(SCALE, parse_time(system.env["GRIDCASE_CLOCK_ANCHOR"]))
    system.processes.stop(scheduler(1), scheduler(2))  # the cases open with no scheduler running
    ids = post_reports(system, CASES, "deadline", base=topology.url)
    engine = make_engine(system.env["GRIDCASE_ESCALATION_DATABASE_URL"])
    wait_for(lambda: len(scheduler_steps(engine)) == CASES, timeout=60, message=f"{CASES} cases opened")

    topology.start_worker("scheduler", 1)
    topology.start_worker("scheduler", 2)
    victim = wait_for(lambda: writing_scheduler(engine), timeout=60, interval=0.005,
                      message="a scheduler in the middle of a tick", watch=system.processes)
    system.processes.kill(scheduler(victim))
    killed_at = time.monotonic()
    killed_at_service = clock.now()
    topology.start_worker("scheduler", victim)
    # deadlines that all come due after the restart
    ids |= post_reports(system, LATER, "deadline-later", base=topology.url)
    total = CASES + LATER

    def overdue() -> int:
        return sum(1 for steps in scheduler_steps(engine).values() if any(s[0] == "overdue" for s in steps))

    wait_for(lambda: overdue() == total, timeout=CLIMB + 90, interval=0.5,
             message="every case overdue at headquarters", watch=system.processes)
    climbed_in = time.monotonic() - killed_at
    time.sleep(2 * 0.5)  # a doubled step would come from a tick after the last one: two idle intervals

    for case_id, steps in scheduler_steps(engine).items():
        fired = [(t, level, at) for t, level, at in steps if t in ("escalated", "overdue")]
        assert [(t, level) for t, level, _ in fired] == [("escalated", 2), ("escalated", 3), ("escalated", 4),
                                                         ("overdue", 4)], f"{case_id}: {steps}"
        [opened] = [at for t, _, at in steps if t == "opened"]
        deadlines = [at for _, _, at in fired]
        limits = [b - a for a, b in zip([opened, *deadlines], deadlines, strict=False)]
        assert limits[1:] == [timedelta(hours=HOURS[level]) for level in (2, 3, 4)], \
            f"{case_id}: each step on the original schedule: {steps}"
        keys = [(t, level, at) for t, level, at in steps if t in ("escalated", "overdue", "warning")]
        assert len(keys) == len(set(keys)), f"{case_id}: a step fired twice: {steps}"
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*), count(DISTINCT (case_id, level)) FROM escalations")).one() \
            == (3 * total, 3 * total)
    intake = make_engine(system.env["GRIDCASE_INTAKE_DATABASE_URL"])
    wait_for(lambda: _levels(intake) == {4: total}, timeout=60, message="every report at headquarters in intake")
    intake.dispose()
    assert_loop_invariants(system, {i: i for i in ids})

    with engine.connect() as db:
        fired = db.execute(sa.select(escalations.c.scheduled_at, escalations.c.fired_at)).all()
    engine.dispose()
    after = [(due, at) for due, at in fired if at > killed_at_service]
    first = min(at for _, at in after) - killed_at_service
    outages.append((f"scheduler {victim} of 2 SIGKILLed mid-tick: the first deadline fired after",
                    clock.to_real_seconds(first.total_seconds())))
    late = [clock.to_real_seconds((at - due).total_seconds()) for due, at in after if due > killed_at_service]
    assert late, "deadlines came due after the restart"
    outages.append(("... a deadline due after the kill fired late by at most", max(late)))
    outages.append((f"... all {total} cases overdue at headquarters after", climbed_in))


def _levels(engine) -> dict[int, int]:
    with engine.connect() as db:
        return dict(db.execute(sa.text("SELECT level, count(*) FROM reports GROUP BY level")).all())
