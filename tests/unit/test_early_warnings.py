"""Early warning (预警): the policy's rules and every bad one as a finding naming its line, the spatial
cells, and clusters and recurring problems decided as cases arrive — through escalation's handlers, with
a fake unit of work (the SQL is exercised in tests/integration/test_early_warning_store.py)."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.escalation import early_warnings, handlers
from services.escalation.domain import early_warnings as rules
from services.escalation.domain.errors import InvalidArgument, InvalidTransition
from shared.auth import Identity
from shared.clock import FakeClock
from shared.messages import events
from shared.policy import PolicyError, load_policy, parse_policy
from shared.timemodel import parse_window
from shared.vocabulary import Level, Status
from tests.unit.fakes import FakeCaseStore, FakeUnitOfWork

BASE = """
[groups.facilities]
zh = "部件"
en = "Facilities"

[groups.events]
zh = "事件"
en = "Events"

[[categories]]
code = "street_light"
zh = "路灯损坏"
en = "Broken street light"
group = "facilities"

[[categories]]
code = "road_damage"
zh = "道路破损"
en = "Damaged road"
group = "facilities"

[[categories]]
code = "other"
zh = "其他"
en = "Other"
group = "events"
"""
CLUSTER = """
[[early_warnings]]
name = "lights"
category = "street_light"
radius_m = 200
window = "24 hours"
min_reports = 5
"""
RECURRING = """
[[early_warnings]]
name = "again"
kind = "recurring"
group = "facilities"
window = "90 days"
min_reports = 3
"""
POLICY = parse_policy(BASE + CLUSTER, "p.toml")
G1 = events.Owners(grid=events.AreaRef("G1", "g1"), station=events.AreaRef("S1", "s1"),
                   subcenter=events.AreaRef("C1", "c1"), hq=events.AreaRef("HQ", "city"))
G2 = events.Owners(grid=events.AreaRef("G2", "g2"), station=events.AreaRef("S2", "s2"),
                   subcenter=events.AreaRef("C1", "c1"), hq=events.AreaRef("HQ", "city"))
LON, LAT = 121.47, 31.23
COMMAND = Identity("command", "chen")


def problem(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.toml")
    return caught.value


def line_of(text: str, needle: str, nth: int = 1) -> int:
    return [n for n, line in enumerate(text.splitlines(), start=1) if needle in line][nth - 1]


# -- the rules in the policy ---------------------------------------------------------------------------

def test_the_shipped_policy_warns_of_five_street_lights_out_within_200_m_in_24_hours():
    [lights] = [r for r in load_policy().warning_rules("street_light") if r.kind == "cluster"]
    assert (lights.radius_m, lights.window, lights.min_reports) == (200.0, 86400.0, 5)
    recurring = [r for r in load_policy().early_warnings if r.kind == "recurring"]
    assert recurring and recurring[0].window == 90 * 86400.0


def test_a_group_rule_watches_each_category_of_the_group_and_no_other():
    policy = parse_policy(BASE + RECURRING)
    [rule] = policy.early_warnings
    assert rule.categories == ("street_light", "road_damage") and policy.warning_rules("other") == ()


@pytest.mark.parametrize(("written", "seconds"), [("24 hours", 86400), ("90 days", 90 * 86400), ("30 minutes", 1800),
                                                   (6, 6 * 3600), ("366 days", 366 * 86400)])
def test_a_window_is_elapsed_time_in_the_time_model_s_units(written, seconds):
    assert parse_window(written) == seconds


BAD_RULES = [
    # (what is wrong, the rule's text, the text on the line named (None: the rule's header), in the message)
    ("an unknown key", CLUSTER.replace("radius_m = 200", "radius = 200"), "radius = 200", "unknown key 'radius'"),
    ("no name", CLUSTER.replace('name = "lights"\n', ""), None, "needs a name"),
    ("a name with spaces", CLUSTER.replace('"lights"', '"street lights"'), "name =", "needs a name"),
    ("a category and a group", CLUSTER.replace('category = "street_light"',
                                               'category = "street_light"\ngroup = "facilities"'), "group =",
     "a category or a group"),
    ("neither category nor group", CLUSTER.replace('category = "street_light"\n', ""), None, "a category or a group"),
    ("an unknown category", CLUSTER.replace('"street_light"', '"lamp"'), "category =", "unknown category 'lamp'"),
    ("a group with no category", CLUSTER.replace('category = "street_light"', 'group = "rivers"'), "group =",
     "no category is in the group 'rivers'"),
    ("an unknown kind", CLUSTER.replace('name = "lights"', 'name = "lights"\nkind = "burst"'), "kind =",
     "unknown kind 'burst'"),
    ("a cluster without a radius", CLUSTER.replace("radius_m = 200\n", ""), None, "radius_m is a distance"),
    ("a radius of 0 m", CLUSTER.replace("radius_m = 200", "radius_m = 0"), "radius_m =", "radius_m is a distance"),
    ("a radius over 5 km", CLUSTER.replace("radius_m = 200", "radius_m = 6000"), "radius_m =", "from 1 to 5000"),
    ("a radius as text", CLUSTER.replace("radius_m = 200", 'radius_m = "200"'), "radius_m =", "radius_m is"),
    ("a radius as a boolean", CLUSTER.replace("radius_m = 200", "radius_m = true"), "radius_m =", "radius_m is"),
    ("a recurring rule with a radius", RECURRING.replace('window = "90 days"', 'window = "90 days"\nradius_m = 50'),
     "radius_m =", "takes no radius_m"),
    ("no window", CLUSTER.replace('window = "24 hours"\n', ""), None, "needs a window"),
    ("a window in working days", CLUSTER.replace('"24 hours"', '"2 working_days"'), "window =", "elapsed time"),
    ("a window in an unknown unit", CLUSTER.replace('"24 hours"', '"4 fortnights"'), "window =",
     "unknown unit 'fortnights'"),
    ("a window of nothing", CLUSTER.replace('"24 hours"', '"0 hours"'), "window =", "positive"),
    ("a window over a year", CLUSTER.replace('"24 hours"', '"400 days"'), "window =", "longer than a year"),
    ("a window that is not one", CLUSTER.replace('"24 hours"', '"soon"'), "window =", "not a window"),
    ("one report is no cluster", CLUSTER.replace("min_reports = 5", "min_reports = 1"), "min_reports =",
     "from 2 to 1000"),
    ("too many reports", CLUSTER.replace("min_reports = 5", "min_reports = 1001"), "min_reports =", "from 2 to 1000"),
    ("a fraction of a report", CLUSTER.replace("min_reports = 5", "min_reports = 2.5"), "min_reports =",
     "whole number"),
    ("a count as text", CLUSTER.replace("min_reports = 5", 'min_reports = "5"'), "min_reports =", "whole number"),
    ("no count", CLUSTER.replace("min_reports = 5\n", ""), None, "min_reports is"),
]


@pytest.mark.parametrize(("rule", "named", "message"), [b[1:] for b in BAD_RULES], ids=[b[0] for b in BAD_RULES])
def test_every_bad_early_warning_rule_is_a_finding_naming_its_line(rule, named, message):
    text = BASE + CLUSTER.replace('"lights"', '"first"') + rule
    error = problem(text)
    header = line_of(text, "[[early_warnings]]", nth=2)  # the bad rule is the second
    lines = text.splitlines()
    expected = next(n for n in range(header, len(lines) + 1) if named in lines[n - 1]) if named else header
    assert error.line == expected and message in str(error) and str(error).startswith(f"p.toml:{expected}:")


def test_two_rules_with_one_name_are_refused_on_the_second_name():
    text = BASE + CLUSTER + CLUSTER
    error = problem(text)
    assert error.line == line_of(text, 'name = "lights"', nth=2) and "twice" in str(error)


def test_early_warnings_that_are_not_a_list_of_rules_are_refused_on_their_line():
    text = BASE + '\n[early_warnings]\nname = "x"\n'
    assert problem(text).line == line_of(text, "[early_warnings]") and "list of rules" in str(problem(text))
    text = BASE.replace("\n[groups.facilities]", "early_warnings = [1, 2]\n\n[groups.facilities]")
    assert problem(text).line == line_of(text, "early_warnings = [1, 2]")


def test_at_most_a_hundred_rules():
    rules_text = "".join(CLUSTER.replace('"lights"', f'"r{n}"') for n in range(101))
    error = problem(BASE + rules_text)
    assert "at most 100" in str(error) and error.line == line_of(BASE + rules_text, "[[early_warnings]]")


# -- where a report lies -----------------------------------------------------------------------------

def destination(lon: float, lat: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` from (lon, lat) along ``bearing`` (degrees) on the same sphere."""
    d = metres / rules.EARTH_RADIUS_M
    p1, l1, b = math.radians(lat), math.radians(lon), math.radians(bearing)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(l2), math.degrees(p2)


@settings(max_examples=400, deadline=None)
@given(lon=st.floats(-179, 179), lat=st.floats(-70, 70), bearing=st.floats(0, 360), fraction=st.floats(0, 1),
       radius=st.sampled_from([1.0, 50.0, 200.0, 5000.0]))
def test_every_point_within_the_radius_lies_in_one_of_the_cells_near_the_report(lon, lat, bearing, fraction, radius):
    other = destination(lon, lat, bearing, radius * fraction)
    assert rules.distance_m(lon, lat, *other) <= radius * (1 + 1e-9) + 1e-6
    near = rules.cells_near(lon, lat, radius, radius)
    assert rules.cell(*other, radius) in near and len(near) <= 12


def test_the_distance_is_the_great_circle_s():
    assert rules.distance_m(LON, LAT, LON, LAT + 1) == pytest.approx(rules.DEGREE_M)
    assert rules.distance_m(0, 60, 1, 60) == pytest.approx(rules.DEGREE_M / 2, rel=1e-3)


def test_the_most_points_in_one_window_that_holds_the_new_one():
    clock = FakeClock()
    t0 = clock.now()
    hours = [0, 10, 20, 23, 25]
    points = [rules.Point(f"c{h}", t0 + timedelta(hours=h)) for h in hours]
    best = rules.in_one_window(points, t0 + timedelta(hours=25), timedelta(hours=24))
    assert [p.case_id for p in best] == ["c10", "c20", "c23", "c25"]


# -- clusters as cases arrive --------------------------------------------------------------------------

class City:
    """Escalation with a fake store: reports arrive through ``handlers.open_cases``."""

    def __init__(self, policy=POLICY):
        self.clock = FakeClock()
        self.policy = policy
        self.uow = FakeUnitOfWork(FakeCaseStore({}))
        self.n = 0

    def report(self, metres_east: float = 0.0, *, category="street_light", owners=G1, after=timedelta(minutes=10),
               unverified=False, location=True) -> str:
        self.clock.advance(after)
        self.n += 1
        lon, lat = destination(LON, LAT, 90, metres_east)
        case_id = f"c{self.n}"
        handlers.open_cases([events.CaseDispatched(
            case_id=case_id, number=f"20260105-{self.n:06d}", category=category, severity="normal",
            reported_at=self.clock.now(), areas_version=1, start_level=Level.GRID, owners=owners,
            location=events.Location(lon, lat) if location else None, location_unverified=unverified)],
            self.uow, policy=self.policy, clock=self.clock)
        return case_id

    @property
    def items(self) -> list:
        return list(self.uow.store.early_warnings.items.values())

    def act(self, item, action, note="noted", who=COMMAND):
        return early_warnings.act_on_warning(early_warnings.WarningAction(item.id, action, note, who), self.uow,
                                             clock=self.clock)


def test_four_close_reports_raise_nothing_the_fifth_raises_one_item_and_a_sixth_joins_it():
    city = City()
    first = [city.report(metres_east=30 * n) for n in range(4)]
    assert city.items == []
    fifth = city.report(metres_east=120)
    [item] = city.items
    assert item.reports == [*first, fifth] and item.status == "open" and item.rule == "lights"
    assert item.category == "street_light" and item.area_id == "G1" and item.radius_m == 200
    sixth = city.report(metres_east=-150)
    [item] = city.items
    assert item.reports == [*first, fifth, sixth]
    assert [a["action"] for a in city.uow.store.audit] == ["early_warning.opened", "early_warning.joined"]
    assert all(a["case_id"] is None for a in city.uow.store.audit)
    assert city.uow.store.early_warnings.locked[0] == ("lights", "street_light")


def test_six_close_reports_in_one_batch_raise_one_item_not_six():
    city = City()
    messages = []
    for n in range(6):
        lon, lat = destination(LON, LAT, 90, 10 * n)
        messages.append(events.CaseDispatched(
            case_id=f"b{n}", number=f"20260105-{n:06d}", category="street_light", severity="normal",
            reported_at=city.clock.now(), areas_version=1, start_level=Level.GRID, owners=G1,
            location=events.Location(lon, lat)))
    handlers.open_cases(messages, city.uow, policy=city.policy, clock=city.clock)
    [item] = city.items
    assert item.reports == [f"b{n}" for n in range(6)]
    assert [a["action"] for a in city.uow.store.audit] == ["early_warning.opened", "early_warning.joined"]
    assert city.uow.store.audit[1]["detail"]["reports"] == ["b5"]
    assert all(row["point"].held and row["point"].item_id == item.id for row in city.uow.store.early_warnings.points)


def test_a_report_outside_the_radius_neither_counts_nor_joins():
    city = City()
    for n in range(4):
        city.report(metres_east=10 * n)
    city.report(metres_east=10 + 250)  # 250 m from the first, over 200 m from all four
    assert city.items == []
    city.report(metres_east=15)
    [item] = city.items
    assert len(item.reports) == 5 and "c5" not in item.reports
    city.report(metres_east=15 + 450)
    assert "c7" not in city.items[0].reports and len(city.items) == 1


def test_reports_outside_the_window_do_not_count():
    city = City()
    for n in range(4):
        city.report(metres_east=10 * n, after=timedelta(hours=1))
    city.report(after=timedelta(hours=22))  # 25 h after the first, 22 h after the last
    assert city.items == []
    city.report(after=timedelta(0))  # the last three of the four and these two fit in 24 h
    [item] = city.items
    assert item.reports == ["c2", "c3", "c4", "c5", "c6"]


def test_another_category_and_a_report_without_a_usable_position_do_not_count():
    city = City()
    for _ in range(3):
        city.report()
    city.report(category="road_damage")
    city.report(unverified=True)
    city.report(location=False)
    assert city.items == []
    city.report()
    city.report()
    assert len(city.items) == 1 and len(city.items[0].reports) == 5


def test_an_acknowledged_item_still_takes_new_reports_and_a_closed_one_takes_none_and_its_reports_never_count():
    city = City()
    for _ in range(5):
        city.report()
    [item] = city.items
    assert city.act(item, "acknowledge", "a cable fault: power company called").status == "acknowledged"
    city.report(after=timedelta(days=3))  # days later, yet close to an active item: joins it
    assert city.items[0].reports == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert city.act(item, "close", "cable replaced").status == "closed"
    for _ in range(4):
        city.report()
    assert len(city.items) == 1, "the closed item's reports do not count again"
    city.report()
    new = [i for i in city.items if i.id != item.id]
    assert len(new) == 1 and new[0].reports == ["c7", "c8", "c9", "c10", "c11"] and new[0].status == "open"
    actions = [a["action"] for a in city.uow.store.audit]
    assert actions == ["early_warning.opened", "early_warning.acknowledged", "early_warning.joined",
                       "early_warning.closed", "early_warning.opened"]
    assert city.uow.store.audit[1]["detail"] == {"item": item.id, "note": "a cable fault: power company called"}


def test_an_item_changes_state_only_as_allowed_and_with_a_note():
    city = City()
    for _ in range(5):
        city.report()
    [item] = city.items
    with pytest.raises(InvalidArgument) as missing:
        city.act(item, "acknowledge", "  ")
    assert missing.value.field == "note" and city.items[0].status == "open"
    with pytest.raises(InvalidArgument) as unknown:
        city.act(item, "escalate")
    assert unknown.value.field == "action"
    city.act(item, "close", "a false alarm: one lamp reported five times")
    with pytest.raises(InvalidTransition):
        city.act(item, "acknowledge")
    with pytest.raises(InvalidTransition):
        city.act(item, "close")
    assert [h["action"] for h in city.items[0].history] == ["opened", "closed"]


def test_an_item_outside_the_caller_s_area_is_as_if_it_did_not_exist():
    city = City()
    for _ in range(5):
        city.report()
    [item] = city.items
    with pytest.raises(LookupError):
        city.act(item, "acknowledge", who=Identity("station", "zhou", "S2"))
    assert city.act(item, "acknowledge", who=Identity("station", "li", "S1")).status == "acknowledged"


def test_a_new_item_is_an_early_warning_notification_to_its_sub_center_once_and_a_join_is_none():
    city = City()
    for _ in range(7):
        city.report()
    [item] = city.items
    rows = [r for r in city.uow.store.notification_rows if r["event"] == "early_warning"]
    assert [r["subscription_id"] for r in rows] == ["default.early_warning:unit:C1"]
    assert rows[0]["event_id"] == item.id and rows[0]["case_id"] is None
    warning = rows[0]["payload"]["warning"]
    assert warning["id"] == item.id and warning["rule"] == "lights" and warning["count"] == 5
    assert rows[0]["payload"]["to"] == [{"unit": "C1", "role": "subcenter"}]


# -- recurring problems ------------------------------------------------------------------------------

def closed_and_reopened(city: City, case_id: str) -> None:
    worker = Identity("grid_worker", "wang", "G1")
    for action, arguments, who in (("resolve", {"note": "fixed"}, worker),):
        handlers.take_action(handlers.TakeAction(case_id, action, arguments, who, "*"), city.uow, clock=city.clock,
                             policy=city.policy)
    # the grid worker fixed it on the spot: the station checks it
    handlers.verify_case(events.CaseVerified(case_id=case_id, passed=True, verifier="li", at=city.clock.now()),
                         city.uow, clock=city.clock)
    assert city.uow.store.cases[case_id].status == Status.CLOSED
    handlers.take_action(handlers.TakeAction(case_id, "reopen", {"reason": "dark again"}, COMMAND, "*"), city.uow,
                         clock=city.clock, policy=city.policy)


def test_one_grid_s_reports_and_reopenings_of_a_category_raise_a_recurring_item():
    city = City(parse_policy(BASE + RECURRING))
    first = city.report(category="road_damage")
    city.report(category="road_damage", owners=G2, location=False)  # another grid
    city.report(category="street_light")  # another category of the group: counted on its own
    second = city.report(category="road_damage", after=timedelta(days=30), location=False)
    assert city.items == []
    closed_and_reopened(city, first)
    [item] = city.items
    assert item.kind == "recurring" and item.category == "road_damage" and item.area_id == "G1"
    assert item.reports == [first, second] and item.radius_m is None
    third = city.report(category="road_damage", after=timedelta(days=80))
    assert city.items[0].reports == [first, second, third]


def test_recurring_reports_outside_the_window_do_not_count():
    city = City(parse_policy(BASE + RECURRING))
    city.report(category="road_damage")
    city.report(category="road_damage", after=timedelta(days=50))
    city.report(category="road_damage", after=timedelta(days=50))
    assert city.items == []
    city.report(category="road_damage", after=timedelta(days=1))
    assert len(city.items) == 1 and city.items[0].reports == ["c2", "c3", "c4"]


def test_gridcase_policy_check_lists_the_early_warning_rules_and_names_a_bad_one_s_line(tmp_path):
    from click.testing import CliRunner

    from gridcase.cli import main
    from shared.policy import DEFAULT_FILE

    result = CliRunner().invoke(main, ["policy", "check", str(DEFAULT_FILE), "--today", "2026-12-04"])
    assert result.exit_code == 0
    assert "early warning street_light_cluster: 5 street_light reports within 200 m in 24 hours" in result.output
    assert "early warning facilities_recurring: 10 facilities reports in one grid in 90 days" in result.output
    bad = tmp_path / "bad.toml"
    text = DEFAULT_FILE.read_text(encoding="utf-8").replace("radius_m = 200", "radius_m = 0")
    bad.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert result.exit_code == 1 and f"bad.toml:{line_of(text, 'radius_m = 0')}:" in result.output
