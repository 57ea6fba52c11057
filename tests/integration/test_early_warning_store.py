"""Early warning on the real stores, SQLite and PostgreSQL: clusters through escalation's own handler and
SQL, the items scoped like cases, the points pruned as they age, the desk's hotspot counts — and two
workers deciding on one cluster at once raise one item, not two (PostgreSQL: the advisory lock)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services.escalation import bootstrap, early_warnings, handlers, store
from shared import audit
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.unit.test_early_warnings import destination

LON, LAT = 121.47, 31.23
S1 = events.Owners(grid=events.AreaRef("G1", "g1"), station=events.AreaRef("S1", "s1"),
                   subcenter=events.AreaRef("C1", "c1"), hq=events.AreaRef("HQ", "city"))
S2 = events.Owners(grid=events.AreaRef("G2", "g2"), station=events.AreaRef("S2", "s2"),
                   subcenter=events.AreaRef("C1", "c1"), hq=events.AreaRef("HQ", "city"))
COMMAND = Identity("command", "chen")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/escalation.db"
    return request.getfixturevalue("postgres_url")


def escalation(url, clock):
    """Escalation with the shipped policy (street lights: 5 within 200 m in 24 hours)."""
    return bootstrap.build(Settings(database_urls={"escalation": url}, secret="x"), clock, web=False)


def dispatched(n: int, clock, *, metres_east=0.0, owners=S1) -> events.CaseDispatched:
    lon, lat = destination(LON, LAT, 90, metres_east)
    return events.CaseDispatched(case_id=f"c{n:04d}", number=f"20260105-{n:06d}", category="street_light",
                                 severity="normal", reported_at=clock.now(), areas_version=1, start_level=Level.GRID,
                                 owners=owners, location=events.Location(lon, lat))


def items(service, who=COMMAND, statuses=("open", "acknowledged")):
    with service.uow() as uow:
        return uow.store.early_warnings.page(who, list(statuses), 1, 100)


def test_five_close_street_light_reports_raise_one_item_that_a_sixth_joins_seen_from_both_stations(database_url):
    clock = FakeClock()
    service = escalation(database_url, clock)
    try:
        for n in range(4):
            service.run(handlers.open_cases, [dispatched(n, clock, metres_east=40 * n)])
            clock.advance(timedelta(minutes=20))
        assert items(service) == ([], 0)
        # the fifth arrives in one batch with a report far away, which joins nothing
        service.run(handlers.open_cases, [dispatched(4, clock, metres_east=60), dispatched(5, clock, metres_east=900)])
        [item], total = items(service)
        assert total == 1 and item.reports == ["c0000", "c0001", "c0002", "c0003", "c0004"]
        # the sixth lies in the neighbouring station: it joins, and both stations see the item
        service.run(handlers.open_cases, [dispatched(6, clock, metres_east=-120, owners=S2)])
        [item], _ = items(service)
        assert item.reports[-1] == "c0006" and len(item.reports) == 6
        for station in ("S1", "S2"):
            assert [i.id for i in items(service, Identity("station", "x", station))[0]] == [item.id]
        assert items(service, Identity("station", "x", "S3")) == ([], 0)
        assert item.lon == pytest.approx(destination(LON, LAT, 90, (0 + 40 + 80 + 120 + 60 - 120) / 6)[0], abs=1e-6)

        service.run(early_warnings.act_on_warning, early_warnings.WarningAction(item.id, "close", "cable", COMMAND))
        assert items(service) == ([], 0) and items(service, statuses=["closed"])[1] == 1
        with service.uow() as uow:
            rows = list(uow.store.audit_rows())
            hot = uow.store.early_warnings.hotspots(COMMAND, clock.now().date(), clock.now().date() + timedelta(1))
        assert audit.verify(rows) is None
        assert [r.action for r in rows if r.case_id is None] == ["early_warning.opened", "early_warning.joined",
                                                                 "early_warning.closed"]
        assert hot == [{"area_id": "G1", "category": "street_light", "reports": 6},
                       {"area_id": "G2", "category": "street_light", "reports": 1}]
    finally:
        service.engine.dispose()


def test_a_burst_in_one_batch_raises_one_item_and_the_next_batch_joins_it(database_url):
    clock = FakeClock()
    service = escalation(database_url, clock)
    try:
        service.run(handlers.open_cases, [dispatched(n, clock, metres_east=15 * n) for n in range(7)])
        [item], _ = items(service)
        assert item.reports == [f"c{n:04d}" for n in range(7)]
        service.run(handlers.open_cases, [dispatched(7, clock, metres_east=-20), dispatched(8, clock)])
        [item], _ = items(service)
        assert item.reports[-2:] == ["c0007", "c0008"] and len(item.reports) == 9
        with service.engine.connect() as db:
            held = db.execute(sa.select(store.warning_points.c.item_id, store.warning_points.c.held).where(
                store.warning_points.c.rule == "street_light_cluster")).all()
        assert held == [(item.id, True)] * 9
    finally:
        service.engine.dispose()


def test_points_no_item_holds_are_forgotten_once_they_cannot_share_a_window(database_url):
    clock = FakeClock()
    service = escalation(database_url, clock)
    try:
        service.run(handlers.open_cases, [dispatched(n, clock, metres_east=3000 * n) for n in range(6)])
        clock.advance(timedelta(hours=49))
        service.run(handlers.open_cases, [dispatched(10, clock)])
        with service.engine.connect() as db:
            left = db.execute(sa.select(store.warning_points.c.case_id, store.warning_points.c.rule)).all()
        assert sorted(left) == sorted([("c0010", "facilities_recurring"), ("c0010", "street_light_cluster")] + [
            (f"c{n:04d}", "facilities_recurring") for n in range(6)])  # the recurring window is 90 days
    finally:
        service.engine.dispose()


def _waiting_on_a_lock(engine, application: str) -> bool:
    with engine.connect() as db:
        return bool(db.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = :a"),
            {"a": application}).scalar())


def test_two_workers_deciding_on_one_cluster_at_once_raise_one_item(postgres_url):
    """Worker A has decided on the fifth report (an item) but not committed; worker B takes the sixth. B
    must wait for A's commit — it would otherwise see four points and its own, and open a second item."""
    clock = FakeClock()
    service = escalation(postgres_url, clock)
    other = escalation(postgres_url + ("&" if "?" in postgres_url else "?") + "application_name=worker-b", clock)
    try:
        for n in range(4):
            service.run(handlers.open_cases, [dispatched(n, clock, metres_east=10 * n)])
        policy = service.dependencies["policy"]
        worker_b = threading.Thread(target=other.run, args=(handlers.open_cases, [dispatched(6, clock)]))
        with service.uow() as uow:
            early_warnings.reports_arrived(uow, policy, [dispatched(5, clock)], clock.now())
            worker_b.start()
            deadline = time.monotonic() + 30
            while worker_b.is_alive() and not _waiting_on_a_lock(service.engine, "worker-b"):
                assert time.monotonic() < deadline, "worker B neither finished nor waited"
                time.sleep(0.02)
            assert worker_b.is_alive(), "worker B decided without waiting for worker A's cluster"
            uow.commit()
        worker_b.join(30)
        [item], total = items(service)
        assert total == 1 and item.reports == ["c0000", "c0001", "c0002", "c0003", "c0005", "c0006"]
    finally:
        service.engine.dispose()
        other.engine.dispose()
