"""Every use case of intake and dispatch, through its handler, with a fake unit of work: no database,
no broker. (Escalation's are in test_escalation_handlers.py.)"""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from shapely.geometry import Point, shape

from services.dispatch import handlers as dispatch
from services.dispatch.areaindex import ActiveAreas
from services.dispatch.citygen import generate_city, hierarchy_from_city
from services.dispatch.domain.locate import Locator
from services.intake import handlers as intake
from services.intake.domain.reports import IdempotencyConflict, LocationRequired, NewReport, UnknownCategory
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import Envelope, events, make_message, read_message
from shared.owners import Owners
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

SETTINGS = Settings(location_accuracy_limit_m=200.0)


def submit(uow, report=LAMP, reporter="w1", key="k1", area="G1", role="grid_worker"):
    return intake.submit_report(report, Identity(role, reporter, area), key, uow, clock=FakeClock(), policy=POLICY,
                                settings=SETTINGS)


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


def test_a_report_s_fingerprint_is_the_one_stored_reports_were_given():
    # a retry is matched against the fingerprint stored with the report, possibly by an earlier release
    assert NewReport("street_light", "Lamp out at gate 3 路灯", 102.264, 27.894).fingerprint() == \
        "10928d3ab46e0fb8d2f003fea5642c2d9a15f373410722f735d863dfe97d7a6a"
    assert NewReport("street_light", "x", None, None, 12.5, datetime(2026, 1, 5, 9, 0, 0, 123000, tzinfo=UTC),
                     "urgent", "open311").fingerprint() == \
        "81b8898aac55d1fdb09845923fafa257d7f7bac0553c57f55d1c1afdb486e311"


def test_the_same_key_from_another_reporter_is_another_report():
    uow = FakeUnitOfWork(FakeReportStore())
    assert submit(uow, reporter="w1").report.id != submit(uow, reporter="w2").report.id


def test_an_unknown_category_stores_nothing():
    uow = FakeUnitOfWork(FakeReportStore())
    with pytest.raises(UnknownCategory):
        submit(uow, report=NewReport("alien_landing", "x", 1, 2))
    assert uow.store.reports == {} and uow.published == []


OWNERS = events.Owners(hq=events.AreaRef("HQ", "City"), station=events.AreaRef("S1", "Station"),
                       grid=events.AreaRef("G1", "Grid"))


def dispatched(report) -> events.CaseDispatched:
    return events.CaseDispatched(case_id=report.id, number=report.number_in("UTC"), category="street_light",
                                 severity="normal", reported_at=report.reported_at, areas_version=1,
                                 start_level=Level.GRID, owners=OWNERS)


def opened(report, **fields) -> events.CaseChanged:
    return events.CaseChanged(event="case.opened", case_id=report.id, status="open", level=Level.GRID,
                              owner=events.OwnerRef(Level.GRID, "G1", "Grid"), at=report.reported_at, **fields)


def test_intake_follows_escalation_so_the_reporter_sees_status_level_owner_and_area_scope():
    uow = FakeUnitOfWork(FakeReportStore())
    report = submit(uow).report
    intake.follow_cases([opened(report, scope=Owners.from_ids({"grid": "G1", "station": "S1"}))], uow,
                        clock=FakeClock())
    followed = uow.store.reports[report.id]
    assert (followed.status, followed.owner_area_id) == ("open", "G1")
    assert followed.owners.scope() == {"grid": "G1", "station": "S1", "subcenter": None}
    intake.follow_cases([events.CaseChanged(
        event="case.escalated", case_id=report.id, status="open", level=Level.STATION,
        owner=events.OwnerRef(Level.STATION, "S1", "Station"), at=report.reported_at)], uow, clock=FakeClock())
    assert uow.store.reports[report.id].level == Level.STATION
    intake.follow_cases([events.CaseTransferred(case_id=report.id, owners=OWNERS, level=None, reason="v2",
                                                actor="dispatch")], uow, clock=FakeClock())
    assert uow.store.reports[report.id].owner_area_id == "S1", "a re-route keeps the level"


def test_intake_waits_for_escalation_to_decide_a_reroute_dispatch_proposed():
    uow = FakeUnitOfWork(FakeReportStore())
    report = submit(uow).report
    intake.follow_cases([opened(report, scope=Owners.from_ids({"grid": "G1", "station": "S1"}))], uow,
                        clock=FakeClock())
    elsewhere = Owners.from_ids({"grid": "G7", "station": "S7", "subcenter": "C1", "hq": "HQ"})
    proposal = events.CaseTransferred(case_id=report.id, owners=elsewhere, level=None, reason="v2", actor="dispatch")
    intake.follow_cases([received(proposal, "dispatch")], uow, clock=FakeClock())
    assert uow.store.reports[report.id].owners.grid.id == "G1"
    intake.follow_cases([received(proposal, "escalation")], uow, clock=FakeClock())
    assert uow.store.reports[report.id].owners.grid.id == "G7"


def test_a_case_dispatched_queued_before_case_opened_carried_the_scope_is_still_followed():
    uow = FakeUnitOfWork(FakeReportStore())
    report = submit(uow).report
    intake.follow_cases([dispatched(report)], uow, clock=FakeClock())
    followed = uow.store.reports[report.id]
    assert (followed.status, followed.owner_area_id, followed.owners.station.id) == ("open", "G1", "S1")
    intake.follow_cases([opened(report)], uow, clock=FakeClock())  # no scope (an older producer): kept
    assert uow.store.reports[report.id].owners.station.id == "S1"


def test_a_batch_of_case_events_is_applied_in_order_one_case_after_another():
    uow = FakeUnitOfWork(FakeReportStore())
    first, second = submit(uow).report, submit(uow, key="second").report
    escalated = events.CaseChanged(event="case.escalated", case_id=first.id, status="open", level=Level.STATION,
                                   owner=events.OwnerRef(Level.STATION, "S1", "Station"), at=first.reported_at)
    intake.follow_cases([opened(first), opened(second), escalated], uow, clock=FakeClock())
    assert (uow.store.reports[first.id].level, uow.store.reports[first.id].owner_area_id) == (Level.STATION, "S1")
    assert (uow.store.reports[second.id].level, uow.store.reports[second.id].owner_area_id) == (Level.GRID, "G1")


@pytest.mark.parametrize("lon, lat, accuracy", [(None, None, None), (0.0, 0.0, 5.0), (102.26, 27.89, 1500.0)],
                         ids=["no position", "0,0", "accuracy 1.5 km"])
def test_a_grid_workers_report_without_a_usable_fix_goes_to_their_own_grid_flagged(lon, lat, accuracy):
    uow = FakeUnitOfWork(FakeReportStore())
    submitted = submit(uow, report=NewReport("street_light", "lamp out", lon, lat, accuracy), area="G7")
    [message] = uow.of_type(events.CaseReported)
    assert submitted.report.location_unverified and message.location_unverified
    assert message.reporter_grid == "G7"


def test_a_precise_fix_is_trusted_and_names_no_grid():
    uow = FakeUnitOfWork(FakeReportStore())
    submit(uow, report=NewReport("street_light", "lamp out", 102.26, 27.89, 12.0))
    [message] = uow.of_type(events.CaseReported)
    assert not message.location_unverified and message.reporter_grid is None and message.accuracy_m == 12.0


def test_staff_must_send_a_position_and_a_staff_0_0_is_not_rerouted():
    uow = FakeUnitOfWork(FakeReportStore())
    with pytest.raises(LocationRequired):
        submit(uow, report=NewReport("street_light", "lamp out", None, None), role="station", area="S1")
    submit(uow, report=NewReport("street_light", "lamp out", 0.0, 0.0), role="station", area="S1", key="k2")
    [message] = uow.of_type(events.CaseReported)
    assert not message.location_unverified and message.reporter_grid is None


def test_a_reporter_lists_only_their_own_reports_newest_first():
    uow = FakeUnitOfWork(FakeReportStore())
    first = submit(uow, key="a").report
    second = submit(uow, report=NewReport("street_light", "another lamp", 102.26, 27.89), key="b").report
    submit(uow, reporter="w2", key="c")
    found, total = intake.my_reports(Identity("grid_worker", "w1", "G1"), 1, 10, uow)
    assert [r.id for r in found] == [second.id, first.id] and total == 2


NEARBY = Settings(duplicate_radius_m=50.0, duplicate_window_hours=72.0)


def submit_near(uow, dlat_m: float, category="street_light", key=None, reporter="w2"):
    report = NewReport(category, "lamp out again", 102.26, 27.89 + dlat_m / 111_195)
    return intake.submit_report(report, Identity("grid_worker", reporter, "G1"), key or f"{category}{dlat_m}", uow,
                                clock=FakeClock(), policy=POLICY, settings=NEARBY)


def test_a_report_near_an_open_case_of_its_category_is_linked_to_it_and_opens_no_case():
    uow = FakeUnitOfWork(FakeReportStore())
    first = submit_near(uow, 0, reporter="w1").report
    again = submit_near(uow, 30).report
    assert again.duplicate_of == first.id
    assert [m.case_id for m in uow.of_type(events.CaseReported)] == [first.id]


@pytest.mark.parametrize("dlat_m, category", [(80, "street_light"), (10, "illegal_dumping")],
                         ids=["80 m away", "another category"])
def test_a_report_further_away_or_of_another_category_is_a_case_of_its_own(dlat_m, category):
    uow = FakeUnitOfWork(FakeReportStore())
    submit_near(uow, 0, reporter="w1")
    assert submit_near(uow, dlat_m, category=category).report.duplicate_of is None
    assert len(uow.of_type(events.CaseReported)) == 2


def test_a_closed_case_takes_no_duplicates():
    uow = FakeUnitOfWork(FakeReportStore())
    first = submit_near(uow, 0, reporter="w1").report
    uow.store.reports[first.id] = replace(first, status=Status.CLOSED)
    assert submit_near(uow, 5).report.duplicate_of is None


def test_staff_unlink_a_duplicate_and_it_is_reported_as_a_case_of_its_own():
    uow = FakeUnitOfWork(FakeReportStore())
    first = submit_near(uow, 0, reporter="w1").report
    duplicate = submit_near(uow, 20).report
    unlinked = intake.unlink_duplicate(intake.Unlink(duplicate.id, Identity("command", "hq")), uow, clock=FakeClock(),
                                       settings=SETTINGS)
    assert unlinked.duplicate_of is None
    assert [m.case_id for m in uow.of_type(events.CaseReported)] == [first.id, duplicate.id]
    with pytest.raises(intake.NotADuplicate):
        intake.unlink_duplicate(intake.Unlink(first.id, Identity("command", "hq")), uow, clock=FakeClock(),
                                settings=SETTINGS)


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


def test_an_unverified_report_is_routed_to_the_reporters_grid_whatever_its_point():
    uow = FakeUnitOfWork(FakeDispatchStore())
    grid = GRIDS[5]["properties"]["id"]
    message = replace(reported("c1", 0.0, 0.0), location=None, location_unverified=True, reporter_grid=grid)
    dispatch.dispatch_cases([message], uow, areas=FakeAreas(), policy=POLICY, clock=FakeClock())
    [sent] = uow.published
    assert sent.owners.grid.id == grid and sent.start_level is Level.GRID and not sent.triage
    assert sent.location_unverified and sent.location is None
    record = uow.store.records["c1"]
    assert shape(GRIDS[5]["geometry"]).contains(Point(record["lon"], record["lat"]))


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


def received(message, producer: str):
    """``message`` as a consumer receives it from ``producer`` (with its envelope)."""
    return read_message(Envelope.from_json(make_message(message, occurred_at=FakeClock().now(),
                                                        producer=producer).to_json()))


def test_dispatch_takes_the_owners_escalation_decided_and_not_its_own_proposal_back():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c1", *point_in(GRIDS[0]))], uow, areas=FakeAreas(), policy=POLICY,
                            clock=FakeClock())
    record = uow.store.records["c1"]
    target = GRIDS[1]["properties"]["id"]
    owners = Owners.from_ids({"grid": target, "station": record["station_id"], "subcenter": record["subcenter_id"],
                              "hq": record["hq_id"]})
    dispatch.follow_transfer(received(events.CaseTransferred(case_id="c1", owners=owners, level=None, reason="v2",
                                                             actor="dispatch"), "dispatch"), uow)
    assert uow.store.records["c1"]["grid_id"] == GRIDS[0]["properties"]["id"], "a proposal is not a decision"
    dispatch.follow_transfer(received(events.CaseTransferred(case_id="c1", owners=owners, level=Level.GRID,
                                                             reason="wrong side", actor="cmd"), "escalation"), uow)
    assert uow.store.records["c1"]["grid_id"] == target


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
    assert moved.basis is None, "computed from the owners the case opened with"


def test_a_reroute_proposal_names_the_case_revision_its_owners_were_taken_at():
    uow = FakeUnitOfWork(FakeDispatchStore())
    dispatch.dispatch_cases([reported("c0", *point_in(GRIDS[0]))], uow, areas=FakeAreas(), policy=POLICY,
                            clock=FakeClock())
    record = uow.store.records["c0"]
    owners = Owners.from_ids({"grid": GRIDS[0]["properties"]["id"], "station": record["station_id"],
                              "subcenter": record["subcenter_id"], "hq": record["hq_id"]})
    dispatch.follow_transfer(received(events.CaseTransferred(case_id="c0", owners=owners, level=None,
                                                             reason="owners kept", actor="system", revision=7),
                                      "escalation"), uow)
    city = generate_city(grids=16, stations=4, subcenters=2, seed=3)
    city["grid"]["features"][0]["properties"]["id"] = "RENAMED-GRID"
    dispatch.import_areas(dispatch.ImportAreas(city, source="test"), uow, clock=FakeClock(), policy=POLICY)
    [moved] = uow.of_type(events.CaseTransferred)
    assert moved.basis == 7


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


def test_only_the_first_verification_of_a_round_is_sent_and_a_new_round_takes_one_again():
    uow = FakeUnitOfWork(FakeReportStore())
    report = awaiting_verification(uow)
    worker = Identity("grid_worker", "w-g1", "G1")
    verify(uow, report, worker, passed=False)
    with pytest.raises(intake.AlreadyVerified):
        verify(uow, report, worker, passed=True)
    assert len(uow.of_type(events.CaseVerified)) == 1
    at = FakeClock().now()
    for event, status in (("case.reworked", "rework"), ("case.resolved", "verifying")):
        intake.follow_cases([events.CaseChanged(event=event, case_id=report.id, status=status, level=Level.GRID,
                                                owner=events.OwnerRef(Level.GRID, "G1", "Grid"), at=at)],
                            uow, clock=FakeClock())
    verify(uow, report, worker, passed=True)
    assert len(uow.of_type(events.CaseVerified)) == 2


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
