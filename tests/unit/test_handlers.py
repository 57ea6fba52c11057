"""Every use case of intake and dispatch, through its handler, with a fake unit of work: no database,
no broker. (Escalation's are in test_escalation_handlers.py.)"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from shapely.geometry import shape

from services.dispatch import handlers as dispatch
from services.dispatch.areaindex import ActiveAreas
from services.dispatch.citygen import generate_city, hierarchy_from_city
from services.dispatch.domain.locate import Locator
from services.intake import handlers as intake
from services.intake.domain.reports import IdempotencyConflict, NewReport, UnknownCategory
from shared.auth import Identity
from shared.clock import FakeClock
from shared.messages import events
from shared.policy import load_policy
from shared.vocabulary import Level, Status
from tests.unit.fakes import FakeDispatchStore, FakeReportStore, FakeUnitOfWork

POLICY = load_policy()
CITY = generate_city(grids=16, stations=4, subcenters=2, seed=3)
HIERARCHY = hierarchy_from_city(CITY)
GRIDS = CITY["grid"]["features"]
LAMP = NewReport("street_light", "lamp out at gate 3", 102.26, 27.89)


def point_in(feature) -> tuple[float, float]:
    point = shape(feature["geometry"]).representative_point()
    return point.x, point.y


class FakeAreas:
    """The area index, over a generated city."""

    def __init__(self, hierarchy=HIERARCHY, version=1):
        self.active = ActiveAreas(version, hierarchy, Locator(hierarchy))

    def version(self, store, *, share_lock=True):
        return self.active


# -- intake --------------------------------------------------------------------------------------------

def submit(uow, report=LAMP, reporter="w1", key="k1"):
    return intake.submit_report(report, reporter, key, uow, clock=FakeClock(), policy=POLICY)


def test_a_report_is_stored_with_its_case_reported_message_in_one_commit():
    uow = FakeUnitOfWork(FakeReportStore())
    submitted = submit(uow)
    assert submitted.created and submitted.report.status == Status.REPORTED
    [message] = uow.of_type(events.CaseReported)
    assert message.case_id == submitted.report.id and message.number == submitted.report.number_in("UTC")
    assert message.location == events.Location(LAMP.lon, LAMP.lat)


def test_the_same_key_and_report_again_return_the_first_case_and_publish_nothing_new():
    uow = FakeUnitOfWork(FakeReportStore())
    first = submit(uow)
    again = submit(uow)
    assert not again.created and again.report.id == first.report.id
    assert len(uow.store.reports) == 1


def test_the_same_key_with_another_report_is_a_conflict():
    uow = FakeUnitOfWork(FakeReportStore())
    submit(uow)
    with pytest.raises(IdempotencyConflict):
        submit(uow, report=NewReport("street_light", "another lamp", 102.26, 27.89))


def test_the_same_key_from_another_reporter_is_another_report():
    uow = FakeUnitOfWork(FakeReportStore())
    assert submit(uow, reporter="w1").report.id != submit(uow, reporter="w2").report.id


def test_an_unknown_category_stores_nothing():
    uow = FakeUnitOfWork(FakeReportStore())
    with pytest.raises(UnknownCategory):
        submit(uow, report=NewReport("alien_landing", "x", 1, 2))
    assert uow.store.reports == {} and uow.published == []


def test_intake_follows_dispatch_and_escalation_so_the_reporter_sees_status_level_and_owner():
    uow = FakeUnitOfWork(FakeReportStore())
    report = submit(uow).report
    owners = events.Owners(hq=events.AreaRef("HQ", "City"), station=events.AreaRef("S1", "Station"),
                           grid=events.AreaRef("G1", "Grid"))
    intake.follow_case(events.CaseDispatched(
        case_id=report.id, number=report.number_in("UTC"), category="street_light", severity="normal",
        reported_at=report.reported_at, areas_version=1, start_level=Level.GRID, owners=owners), uow,
        clock=FakeClock())
    assert (uow.store.reports[report.id].status, uow.store.reports[report.id].owner_area_id) == ("open", "G1")
    intake.follow_case(events.CaseChanged(
        event="case.escalated", case_id=report.id, status="open", level=Level.STATION,
        owner=events.OwnerRef(Level.STATION, "S1", "Station"), at=report.reported_at), uow, clock=FakeClock())
    assert uow.store.reports[report.id].level == Level.STATION
    intake.follow_case(events.CaseTransferred(case_id=report.id, owners=owners, level=None, reason="v2",
                                              actor="dispatch"), uow, clock=FakeClock())
    assert uow.store.reports[report.id].owner_area_id == "S1", "a re-route keeps the level"


# -- dispatch ------------------------------------------------------------------------------------------

def reported(case_id: str, lon: float, lat: float, category: str = "street_light") -> events.CaseReported:
    return events.CaseReported(case_id=case_id, number=f"n-{case_id}", category=category, severity="normal",
                               description="x", location=events.Location(lon, lat), reporter="w1",
                               reported_at=datetime(2026, 1, 5, tzinfo=UTC))


def test_a_batch_of_reports_is_located_recorded_and_dispatched_in_one_commit():
    uow = FakeUnitOfWork(FakeDispatchStore())
    batch = [reported(f"c{i}", *point_in(GRIDS[i])) for i in range(3)]
    dispatch.dispatch_cases(batch, uow, areas=FakeAreas(), policy=POLICY, clock=FakeClock())
    assert uow.commits == 1
    sent = uow.of_type(events.CaseDispatched)
    assert [m.owners.grid.id for m in sent] == [GRIDS[i]["properties"]["id"] for i in range(3)]
    assert all(m.start_level is Level.GRID for m in sent)
    assert set(uow.store.records) == {"c0", "c1", "c2"}


def test_an_urgent_category_starts_at_its_level_with_the_owners_below_kept():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c1", *point_in(GRIDS[0]), category="safety_hazard")], uow,
                            areas=FakeAreas(), policy=POLICY, clock=FakeClock())
    [message] = uow.published
    assert message.start_level is Level.SUBCENTER and message.owners.grid is not None


def test_a_point_outside_the_city_goes_to_headquarters_for_triage():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c1", 0.0, 0.0)], uow, areas=FakeAreas(), policy=POLICY, clock=FakeClock())
    [message] = uow.published
    assert message.start_level is Level.HQ and message.triage and message.owners.grid is None


def test_a_closed_case_is_no_longer_moved_by_a_new_area_version():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c1", *point_in(GRIDS[0]))], uow, areas=FakeAreas(), policy=POLICY,
                            clock=FakeClock())
    dispatch.close_case(events.CaseChanged(event="case.closed", case_id="c1", status="closed", level=Level.GRID,
                                           owner=events.OwnerRef(Level.GRID, "G", "g"), at=FakeClock().now()),
                        uow, clock=FakeClock())
    assert uow.store.open_dispatches() == []


def test_staff_transfer_a_case_to_another_grid_in_their_area_and_say_so():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c1", *point_in(GRIDS[0]))], uow, areas=FakeAreas(), policy=POLICY,
                            clock=FakeClock())
    target = GRIDS[1]["properties"]["id"]
    command = dispatch.TransferCase("c1", target, reason="wrong side of the street", actor="cmd",
                                    identity=Identity("command", "cmd"))
    moved = dispatch.transfer_case(command, uow, areas=FakeAreas())
    assert moved.level is Level.GRID and moved.owners.grid.id == target
    assert uow.store.records["c1"]["grid_id"] == target and uow.published[-1] == moved


def test_a_transfer_outside_the_callers_area_is_as_if_the_case_did_not_exist():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c1", *point_in(GRIDS[0]))], uow, areas=FakeAreas(), policy=POLICY,
                            clock=FakeClock())
    other_station = next(f["properties"]["id"] for f in CITY["station"]["features"]
                         if f["properties"]["id"] != uow.store.records["c1"]["station_id"])
    command = dispatch.TransferCase("c1", GRIDS[1]["properties"]["id"], reason="r", actor="s",
                                    identity=Identity("station", "s", other_station))
    with pytest.raises(LookupError):
        dispatch.transfer_case(command, uow, areas=FakeAreas())


def test_a_transfer_to_a_subcenter_is_refused():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c1", *point_in(GRIDS[0]))], uow, areas=FakeAreas(), policy=POLICY,
                            clock=FakeClock())
    subcenter = CITY["subcenter"]["features"][0]["properties"]["id"]
    command = dispatch.TransferCase("c1", subcenter, reason="r", actor="a", identity=Identity("admin", "a"))
    with pytest.raises(dispatch.TransferError, match="grid or a station"):
        dispatch.transfer_case(command, uow, areas=FakeAreas())


def test_activating_a_new_version_publishes_it_and_reroutes_only_the_cases_whose_owner_changed():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported(f"c{i}", *point_in(GRIDS[i])) for i in range(2)], uow, areas=FakeAreas(),
                            policy=POLICY, clock=FakeClock())
    city = generate_city(grids=16, stations=4, subcenters=2, seed=3)
    city["grid"]["features"][0]["properties"]["id"] = "RENAMED-GRID"
    result = dispatch.import_areas(dispatch.ImportAreas(city, source="test"), uow, clock=FakeClock(), policy=POLICY)
    assert result.version is not None and uow.store.activated == [result.version]
    assert len(uow.of_type(events.AreasPublished)) == 1
    [moved] = uow.of_type(events.CaseTransferred)
    assert moved.case_id == "c0" and moved.owners.grid.id == "RENAMED-GRID" and moved.level is None


def awaiting_verification(uow, grid="G1"):
    report = submit(uow).report
    uow.store.follow(report.id, status=Status.VERIFYING, grid_id=grid, station_id="S1", subcenter_id="C1")
    return report


def verify(uow, report, identity, passed=True):
    return intake.verify_case(intake.Verify(report.id, passed, "checked", identity), uow, clock=FakeClock())


def test_the_grid_worker_of_the_cases_grid_verifies_it_and_escalation_hears_the_verdict():
    uow = FakeUnitOfWork(FakeReportStore())
    report = awaiting_verification(uow)
    verified = verify(uow, report, Identity("grid_worker", "w-g1", "G1"), passed=False)
    assert uow.published[-1] == verified and not verified.passed and verified.verifier == "w-g1"


def test_a_station_that_sees_the_case_may_not_verify_it():
    uow = FakeUnitOfWork(FakeReportStore())
    report = awaiting_verification(uow)
    with pytest.raises(intake.NotItsGridWorker):
        verify(uow, report, Identity("station", "s1", "S1"))


def test_a_grid_worker_of_another_grid_does_not_see_the_case():
    uow = FakeUnitOfWork(FakeReportStore())
    report = awaiting_verification(uow)
    with pytest.raises(LookupError):
        verify(uow, report, Identity("grid_worker", "w-g2", "G2"))


def test_a_case_not_awaiting_verification_cannot_be_verified():
    uow = FakeUnitOfWork(FakeReportStore())
    report = submit(uow).report
    uow.store.follow(report.id, status=Status.OPEN, grid_id="G1")
    with pytest.raises(intake.NotAwaitingVerification):
        verify(uow, report, Identity("grid_worker", "w-g1", "G1"))
    assert not uow.of_type(events.CaseVerified)
