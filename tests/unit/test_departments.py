"""Functional departments (部门联动): the departments file, the policy's assignments when a case opens,
and each department's acknowledge (签收), feedback (反馈: done or declined) and deadline."""
from __future__ import annotations

from datetime import timedelta

import pytest

from gridcase.cities import DEMO_DEPARTMENTS
from services.escalation import handlers
from services.escalation.domain.errors import InvalidArgument, InvalidTransition, NotAllowed
from shared.auth import Identity
from shared.clock import FakeClock
from shared.departments import Department, handlers_of, parse_departments
from shared.messages import events
from shared.policy import load_policy
from shared.vocabulary import Level, Status
from tests.unit.fakes import FakeCaseStore, FakeUnitOfWork

POLICY = load_policy()
CATEGORIES = set(POLICY.categories)
AREAS = {"HQ": "hq", "SC01": "subcenter", "SC01-ST01": "station", "SC01-ST01-G0001": "grid"}
OWNERS = events.Owners(grid=events.AreaRef("SC01-ST01-G0001", "网格 1"), station=events.AreaRef("SC01-ST01", "站"),
                       subcenter=events.AreaRef("SC01", "分中心"), hq=events.AreaRef("HQ", "指挥部"))
CITY, _ = parse_departments(DEMO_DEPARTMENTS.read_bytes(), categories=CATEGORIES, areas=AREAS)
WATER = Identity("department", "water-desk", department="water")
TRAFFIC = Identity("department", "traffic-desk", department="traffic_police")
HOUSING = Identity("department", "housing-desk", department="housing")
WORKER = Identity("grid_worker", "wang", "SC01-ST01-G0001")
STATION = Identity("station", "li", "SC01-ST01")
COMMAND = Identity("command", "chen")


# -- the departments file ------------------------------------------------------------------------------

def test_the_demo_city_ships_a_realistic_set_of_departments_that_import_cleanly():
    found, findings = parse_departments(DEMO_DEPARTMENTS.read_bytes(), categories=CATEGORIES, areas=AREAS)
    assert findings == [] and 6 <= len(found) <= 10
    water = handlers_of("water_main_burst", found)
    assert (water.lead, water.co) == ("water", ("traffic_police",))
    assert all(d.zh and d.en for d in found)


GOOD = '[[departments]]\nid = "water"\nzh = "水"\nen = "Water"\nserves = "HQ"\nleads = ["water_main_burst"]\n'


@pytest.mark.parametrize(("data", "line", "problem"), [
    (GOOD + GOOD, 8, "appears twice"),
    (GOOD.replace('["water_main_burst"]', '["water_main_burst", "alien_landing"]'), 6, "unknown category"),
    (GOOD.replace('serves = "HQ"', 'serves = "NOWHERE"'), 5, "not an area"),
    (GOOD.replace('serves = "HQ"', 'serves = "SC01-ST01"'), 5, "a station, not the city or a sub-center"),
    (GOOD + 'co_handles = ["road_damage",\n  "water_main_burst"]\n', 8, "both leads and co-handles"),
    (GOOD + GOOD.replace('"water"', '"water2"', 1), 12, "has two leads"),
    (GOOD + 'boss = "me"\n', 7, "unknown key 'boss'"),
    (GOOD.replace('id = "water"', 'id = "wa ter"'), 2, "needs an id"),
    (GOOD.replace('zh = "水"', 'zh = ""'), 3, "needs 'zh'"),
    ("\ufeff" + GOOD, 1, "byte-order mark"),
    ("[[departments]\n", 1, "not TOML"),
])
def test_a_bad_departments_file_is_a_finding_naming_its_line(data, line, problem):
    found, findings = parse_departments(data.encode(), categories=CATEGORIES, areas=AREAS)
    assert findings, "every bad file has a finding"
    assert findings[0].line == line and problem in findings[0].problem, findings


def test_a_file_in_gbk_is_refused_naming_the_line_of_the_first_undecodable_byte():
    data = GOOD.replace('zh = "水"', 'zh = "自来水公司"').encode("gbk")
    _, findings = parse_departments(data, categories=CATEGORIES)
    assert [(f.line, "not UTF-8" in f.problem) for f in findings] == [(3, True)]


def test_the_policy_names_a_categorys_departments_over_the_file():
    chosen = handlers_of("water_main_burst", CITY, lead="housing", co=["traffic_police", "nobody"])
    assert (chosen.lead, chosen.co) == ("housing", ("traffic_police",)), "an unknown id is left out"


# -- the loop with departments ---------------------------------------------------------------------------

def opened(clock: FakeClock, category="water_main_burst", severity="urgent") -> FakeUnitOfWork:
    uow = FakeUnitOfWork(FakeCaseStore({}, departments=CITY))
    handlers.open_cases([events.CaseDispatched(
        case_id="c1", number="20261204-000001", category=category, severity=severity,
        reported_at=clock.now(), areas_version=1, start_level=Level.GRID, owners=OWNERS)], uow,
        policy=POLICY, clock=clock)
    return uow


def act(uow, clock, who, action, **arguments):
    command = handlers.TakeAction("c1", action, arguments, who, handlers.etag(uow.store.revisions["c1"]))
    return handlers.take_action(command, uow, clock=clock, policy=POLICY)


def types(uow) -> list[str]:
    return [m.TYPE for m in uow.published]


def test_a_burst_water_main_opens_at_its_grid_led_by_the_water_company_with_the_traffic_police():
    clock = FakeClock()
    uow = opened(clock)
    case = uow.store.cases["c1"]
    assert case.owner.area_id == "SC01-ST01-G0001" and case.status == Status.DISPATCHED
    assert [(a.department, a.role, a.status) for a in case.assignments] == [
        ("water", "lead", "assigned"), ("traffic_police", "co", "assigned")]
    four_hours = clock.now() + timedelta(hours=4)  # urgent: the policy's department limit, around the clock
    assert case.deadline == four_hours and all(a.deadline == four_hours for a in case.assignments)
    assert types(uow) == ["case.opened", "case.department_assigned", "case.department_assigned"]


def test_the_lead_acknowledges_and_reports_done_and_the_grid_worker_verifies_and_closes_it():
    clock = FakeClock()
    uow = opened(clock)
    act(uow, clock, WATER, "acknowledge", note="crew on the way")
    with pytest.raises(InvalidTransition):
        act(uow, clock, WATER, "acknowledge")
    with pytest.raises(InvalidTransition):
        act(uow, clock, WORKER, "resolve", note="the owner only watches while the water company works")
    clock.advance(timedelta(hours=1))
    act(uow, clock, TRAFFIC, "feedback", outcome="done", note="lane closed, diversion set up")
    case, _ = act(uow, clock, WATER, "feedback", outcome="done", note="pipe replaced", photos=["p-after-1"])
    assert case.status == Status.VERIFYING and case.resolved_department == "water"
    assert [a.status for a in case.assignments] == ["done", "done"] and case.assignments[0].photos == ("p-after-1",)
    with pytest.raises(InvalidTransition):
        act(uow, clock, WATER, "feedback", outcome="done", note="again")
    handlers.verify_case(events.CaseVerified(case_id="c1", passed=True, verifier="wang", at=clock.now()), uow,
                         clock=clock)
    assert uow.store.cases["c1"].status == Status.CLOSED
    assert types(uow)[3:] == ["case.department_acknowledged", "case.department_done", "case.department_done",
                              "case.resolved", "case.closed"]


def test_a_failed_verification_of_a_departments_fix_goes_back_to_that_department():
    clock = FakeClock()
    uow = opened(clock)
    act(uow, clock, WATER, "feedback", outcome="done", note="pipe replaced")
    clock.advance(timedelta(minutes=30))
    handlers.verify_case(events.CaseVerified(case_id="c1", passed=False, verifier="wang", at=clock.now(),
                                             note="still leaking"), uow, clock=clock)
    case = uow.store.cases["c1"]
    assert case.status == Status.DISPATCHED and case.reworks == 1
    assert case.assignments[0].status == "assigned" and case.deadline == clock.now() + timedelta(hours=4)


def test_a_department_that_declines_sends_the_case_back_to_whoever_assigned_it_who_assigns_another():
    clock = FakeClock()
    uow = opened(clock)
    with pytest.raises(InvalidArgument) as refused:
        act(uow, clock, WATER, "feedback", outcome="declined")
    assert refused.value.field == "reason"
    case, _ = act(uow, clock, WATER, "feedback", outcome="declined", reason="a private pipe: not ours")
    assert (case.status, case.level) == (Status.OPEN, Level.HQ), "the policy's assignment is the command center's"
    case, _ = act(uow, clock, COMMAND, "assign_department", department="housing", role="lead", note="private pipes")
    assert case.status == Status.DISPATCHED and case.assignments[-1].department == "housing"
    with pytest.raises(InvalidTransition):
        act(uow, clock, COMMAND, "assign_department", department="housing", role="co")
    case, _ = act(uow, clock, HOUSING, "feedback", outcome="declined", reason="no")
    assert case.level == Level.HQ and case.status == Status.OPEN


def test_staff_assign_a_department_and_its_refusal_returns_the_case_to_their_level():
    clock = FakeClock()
    uow = opened(clock, category="other", severity="normal")
    act(uow, clock, WORKER, "escalate", reason="needs a contractor")
    case, _ = act(uow, clock, STATION, "assign_department", department="urban_management", role="lead")
    assert case.status == Status.DISPATCHED and case.assignments[-1].assigned_level == Level.STATION
    case, _ = act(uow, clock, Identity("department", "um", department="urban_management"), "feedback",
                  outcome="declined", reason="a road, not a street-order matter")
    assert (case.status, case.level) == (Status.OPEN, Level.STATION)


@pytest.mark.parametrize(("who", "arguments", "error", "field"), [
    (STATION, {"department": "no_such", "role": "co"}, InvalidArgument, "department"),
    (STATION, {"department": "sc01_mediation", "role": "boss"}, InvalidArgument, "role"),
    (STATION, {"department": "water", "role": "co"}, InvalidTransition, None),  # already on the case
    (STATION, {"department": "housing", "role": "lead"}, InvalidTransition, None),  # a second lead
    (WORKER, {"department": "housing", "role": "co"}, NotAllowed, None),
    (WATER, {"department": "housing", "role": "co"}, NotAllowed, None),
])
def test_a_bad_assignment_changes_nothing(who, arguments, error, field):
    clock = FakeClock()
    uow = opened(clock)
    before = uow.store.cases["c1"]
    with pytest.raises(error) as refused:
        act(uow, clock, who, "assign_department", **arguments)
    assert getattr(refused.value, "field", None) == field
    assert uow.store.cases["c1"] == before


def test_a_department_that_serves_another_district_is_not_assigned():
    other = Department("sc02_water", "二分中心供水所", "District 2 waterworks", "SC02", leads=("water_main_burst",))
    clock = FakeClock()
    uow = FakeUnitOfWork(FakeCaseStore({}, departments=[*[d for d in CITY if d.id != "water"], other]))
    handlers.open_cases([events.CaseDispatched(
        case_id="c1", number="n", category="water_main_burst", severity="urgent", reported_at=clock.now(),
        areas_version=1, start_level=Level.GRID, owners=OWNERS)], uow, policy=POLICY, clock=clock)
    assert [a.department for a in uow.store.cases["c1"].assignments] == ["traffic_police"]
    with pytest.raises(InvalidArgument):
        act(uow, clock, COMMAND, "assign_department", department="sc02_water", role="lead")


def test_a_department_past_its_deadline_is_flagged_once_and_the_case_does_not_climb():
    clock = FakeClock()
    uow = opened(clock)
    clock.advance(timedelta(hours=5))
    handlers.escalate_due(100, uow, clock=clock)
    case = uow.store.cases["c1"]
    assert case.level == Level.GRID and case.status == Status.DISPATCHED
    assert [a.overdue for a in case.assignments] == [True, True]
    assert types(uow).count("case.department_overdue") == 2
    clock.advance(timedelta(hours=50))
    handlers.escalate_due(100, uow, clock=clock)
    assert types(uow).count("case.department_overdue") == 2 and uow.store.cases["c1"].level == Level.GRID
