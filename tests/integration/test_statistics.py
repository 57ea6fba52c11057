"""Closure-time statistics on a test city with a fixed set of cases and known times (the statistics' "done
means"), on SQLite and PostgreSQL alike: a case across the National Day holiday, one across a swapped
working Saturday (调休), one suspended, one extended, one reworked, and one still open that opened at
00:30 local time on 1 November (31 October in UTC) and escalates. Every expected number below is
worked out by hand in the comments, in Asia/Shanghai local time with 08:30-12:00 and 13:00-17:30."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from harness.servers import create_database, drop_database
from services.escalation import bootstrap, handlers
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.support.system import required_server

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = """
[defaults]
verification = "1 working_days"
extensions = { max_count = 2, max_total = "16 working_hours" }
levels = { 1 = "4 working_hours", 2 = "8 working_hours", 3 = "2 working_days", 4 = "3 working_days" }

[[categories]]
code = "street_light"
zh = "路灯损坏"
en = "Broken street light"

[[categories]]
code = "other"
zh = "其他"
en = "Other"

[calendar]
region = "CN"
"""
OWNERS = events.Owners(grid=events.AreaRef("G1", "g"), station=events.AreaRef("S1", "s"),
                       subcenter=events.AreaRef("C1", "c"), hq=events.AreaRef("HQ", "h"))
GRID = Identity(role="grid_worker", user="wang", area="G1")
STATION = Identity(role="station", user="li", area="S1")
COMMAND = Identity(role="command", user="chen")


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


#: (local time, case, what happens); run in time order, with a scheduler tick before each.
SCRIPT = [
    # A, across the National Day holiday (1-7 October 2026 off): opened Wed 30 Sep 16:30; 4 working hours
    # = 1 h that day + 3 h from Thu 8 Oct 08:30 → deadline 8 Oct 11:30. Acknowledged 8 Oct 09:00,
    # resolved 10:30 (on time), verified 15:00. Level 1: 1 h + 2 h = 10,800 s working time.
    (local(2026, 9, 30, 16, 30), "A", "open"),
    (local(2026, 10, 8, 9, 0), "A", ("acknowledge", GRID, {})),
    (local(2026, 10, 8, 10, 30), "A", ("resolve", GRID, {"note": "lamp replaced"})),
    (local(2026, 10, 8, 15, 0), "A", ("verify", True)),
    # B, across the swapped working Saturday 10 October: opened Fri 9 Oct 15:30; 2 h on Friday, 2 h on
    # Saturday (Monday's periods) → deadline Sat 10:30, missed: level 2 from 10:30 with 8 working hours
    # = 6 h on Saturday + 2 h on Mon 12 Oct → 10:30. The station acknowledges Mon 09:00, resolves 10:00,
    # verified 11:00. Level 1: 14,400 s; level 2: 6 h + 1.5 h = 27,000 s.
    (local(2026, 10, 9, 15, 30), "B", "open"),
    (local(2026, 10, 10, 10, 30), "B", "tick"),
    (local(2026, 10, 12, 9, 0), "B", ("acknowledge", STATION, {})),
    (local(2026, 10, 12, 10, 0), "B", ("resolve", STATION, {"note": "fixed"})),
    (local(2026, 10, 12, 11, 0), "B", ("verify", True)),
    # F, open: Sun 1 Nov 00:30 local is 31 Oct in UTC but belongs to November. Deadline Mon 2 Nov 13:30
    # (3.5 h + 0.5 h), missed; level 2 until Tue 3 Nov 13:30 (4 h + 4 h), missed; level 3 until Thu 5 Nov
    # 17:30. Level 1: 14,400 s; level 2: 28,800 s; level 3 still running (not counted).
    (local(2026, 11, 1, 0, 30), "F", "open"),
    # C, suspended: opened Mon 2 Nov 09:00 (deadline 14:00), suspended 10:00 with 3 working hours left,
    # approved at once, resumed Tue 09:00 → deadline 12:00 (the end of a period). Acknowledged 09:30, resolved 11:00,
    # verified 14:00. Suspended 23 h of calendar time: to acknowledge 24.5 h - 23 h = 5,400 s; to resolve
    # 26 h - 23 h = 10,800 s; to close 29 h - 23 h = 21,600 s. Level 1: 1 h + 2 h = 10,800 s.
    (local(2026, 11, 2, 9, 0), "C", "open"),
    (local(2026, 11, 2, 10, 0), "C", ("suspend", GRID, {"reason": "waiting for the power company"})),
    (local(2026, 11, 2, 10, 0), "C", ("approve_suspension", STATION, {})),  # 挂账 needs the level above
    (local(2026, 11, 2, 13, 30), "F", "tick"),
    (local(2026, 11, 3, 9, 0), "C", ("resume", GRID, {})),
    (local(2026, 11, 3, 9, 30), "C", ("acknowledge", GRID, {})),
    (local(2026, 11, 3, 11, 0), "C", ("resolve", GRID, {"note": "fixed"})),
    (local(2026, 11, 3, 13, 30), "F", "tick"),
    (local(2026, 11, 3, 14, 0), "C", ("verify", True)),
    # D, extended: opened Wed 4 Nov 09:00 (deadline 14:00), acknowledged 09:10, 4 working hours asked at
    # 13:00 and approved 13:30 → deadline Thu 09:00. Resolved 16:00: on time with the extension, late
    # without it. Verified Thu 10:00. To acknowledge 600 s, resolve 25,200 s, close 90,000 s; level 1:
    # 3 h + 3 h = 21,600 s.
    (local(2026, 11, 4, 9, 0), "D", "open"),
    (local(2026, 11, 4, 9, 10), "D", ("acknowledge", GRID, {})),
    (local(2026, 11, 4, 13, 0), "D", ("request_extension", GRID, {"amount": {"amount": 4, "unit": "working_hours"},
                                                                  "reason": "parts"})),
    (local(2026, 11, 4, 13, 30), "D", ("approve_extension", STATION, {})),
    (local(2026, 11, 4, 16, 0), "D", ("resolve", GRID, {"note": "fixed"})),
    # E, reworked: opened Thu 5 Nov 09:00, acknowledged 09:30, resolved 10:00, verification failed 11:00
    # (rework at level 1, 4 h from 11:00 → 16:00), resolved again 14:00, verified 15:00. To acknowledge
    # 1,800 s (the first), resolve 18,000 s (the last), close 21,600 s; level 1: 1 h + 1 h + 1 h = 10,800 s
    # (the hour awaiting verification is not at a level).
    (local(2026, 11, 5, 9, 0), "E", "open"),
    (local(2026, 11, 5, 9, 30), "E", ("acknowledge", GRID, {})),
    (local(2026, 11, 5, 10, 0), "D", ("verify", True)),
    (local(2026, 11, 5, 10, 0), "E", ("resolve", GRID, {"note": "fixed"})),
    (local(2026, 11, 5, 11, 0), "E", ("verify", False)),
    (local(2026, 11, 5, 13, 0), "E", ("acknowledge", GRID, {})),
    (local(2026, 11, 5, 14, 0), "E", ("resolve", GRID, {"note": "fixed, really"})),
    (local(2026, 11, 5, 15, 0), "E", ("verify", True)),
]


@pytest.fixture(params=["sqlite", "postgres"], scope="module")
def city(request, tmp_path_factory):
    """The escalation service after the script: six cases with known times."""
    folder = tmp_path_factory.mktemp("stats")
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder}/escalation.db"
    else:
        admin, database = required_server("GRIDCASE_TEST_POSTGRES_URL"), f"gridcase_stats_{uuid.uuid4().hex[:10]}"
        url = create_database(admin, database)
    policy = folder / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    clock = FakeClock(SCRIPT[0][0])
    service = bootstrap.build(Settings(database_urls={"escalation": url}, secret="x", policy_file=str(policy),
                                       time_zone="Asia/Shanghai"), clock, web=False)
    for at, case_id, what in SCRIPT:
        clock.advance(at - clock.now())
        service.run(handlers.escalate_due, 500)
        if what == "open":
            service.run(handlers.open_cases, [events.CaseDispatched(
                case_id=case_id, number=case_id, category="street_light", severity="normal", reported_at=at,
                areas_version=1, start_level=Level.GRID, owners=OWNERS, reporter=f"reporter-{case_id}")])
        elif what == "tick":
            continue
        elif what[0] == "verify":
            # the on-site check: never by the one who made the fix (the station checks a grid worker's own)
            service.run(handlers.verify_case, events.CaseVerified(case_id=case_id, passed=what[1], verifier="checker",
                                                                  at=at, note="" if what[1] else "still dark"))
        else:
            action, who, arguments = what
            with service.uow() as uow:
                uow.store.get(case_id)
                tag = handlers.etag(uow.store.revision(case_id))
            service.run(handlers.take_action, handlers.TakeAction(case_id, action, arguments, who, tag))
    yield service
    service.engine.dispose()
    if database:
        drop_database(admin, database)


def stats(service, identity=COMMAND, group_by="station", period="month", start=date(2026, 9, 1),
          end=date(2026, 12, 1), **options):
    return service.run(handlers.closure_stats, handlers.ClosureStats(identity, group_by, period, start, end,
                                                                     **options))


def test_the_cases_went_as_scripted(city):
    with city.uow() as uow:
        assert uow.store.get("B").level == 2 and uow.store.get("F").level == 3
        assert uow.store.get("C").status == "closed" and uow.store.get("E").reworks == 1


def test_september_has_the_case_across_the_holiday_closed_on_time(city):
    [september] = [r for r in stats(city)["rows"] if r["period_start"] == "2026-09-01"]
    assert september["area_id"] == "S1" and (september["opened"], september["closed"]) == (1, 1)
    assert september["on_time_rate"] == 1.0 and september["escalation_rate"] == 0.0
    assert september["time_to_acknowledge"] == {"median": 664200.0, "p90": 664200.0}  # 7 d 16.5 h
    assert september["time_to_close"]["median"] == 685800.0
    assert september["time_at_level"]["1"] == {"median": 10800.0, "p90": 10800.0}
    assert september["time_at_level"]["2"] == {"median": None, "p90": None}


def test_october_has_the_case_across_the_swapped_saturday_late_and_escalated(city):
    [october] = [r for r in stats(city)["rows"] if r["period_start"] == "2026-10-01"]
    assert (october["opened"], october["closed"], october["overdue"]) == (1, 1, 1)
    assert october["on_time_rate"] == 0.0 and october["on_time_rate_with_extensions"] == 0.0
    assert october["escalation_rate"] == 1.0 and october["rework_rate"] == 0.0
    assert october["time_at_level"]["1"]["median"] == 14400.0 and october["time_at_level"]["2"]["median"] == 27000.0
    assert october["time_to_close"]["median"] == 243000.0


def test_november_matches_the_hand_computed_rates_and_quantiles(city):
    [november] = [r for r in stats(city)["rows"] if r["period_start"] == "2026-11-01"]
    assert (november["opened"], november["closed"], november["overdue"]) == (4, 3, 1)  # F opened 31 Oct UTC
    assert november["closure_rate"] == 0.75
    assert november["on_time_rate"] == pytest.approx(2 / 3)  # D was late without its extension
    assert november["on_time_rate_with_extensions"] == 1.0
    assert november["rework_rate"] == pytest.approx(1 / 3) and november["extension_rate"] == 0.25
    assert november["escalation_rate"] == 0.25
    assert november["time_to_acknowledge"] == {"median": 1800.0, "p90": pytest.approx(4680.0)}  # 600, 1800, 5400
    assert november["time_to_resolve"] == {"median": 18000.0, "p90": pytest.approx(23760.0)}
    assert november["time_to_close"] == {"median": 21600.0, "p90": pytest.approx(76320.0)}
    # level 1: C 10800, E 10800, F 14400, D 21600 → median 12600, p90 at 2.7 → 14400 + 0.7 × 7200
    assert november["time_at_level"]["1"] == {"median": 12600.0, "p90": pytest.approx(19440.0)}
    assert november["time_at_level"]["2"] == {"median": 28800.0, "p90": 28800.0}
    assert november["time_at_level"]["3"] == {"median": None, "p90": None}


def test_periods_are_local_dates_half_open(city):
    days = stats(city, period="day", start=date(2026, 11, 1), end=date(2026, 11, 2))["rows"]
    assert [(r["period_start"], r["opened"]) for r in days] == [("2026-11-01", 1)]
    weeks = stats(city, period="week", start=date(2026, 10, 26), end=date(2026, 11, 9))["rows"]
    assert [(r["period_start"], r["opened"]) for r in weeks] == [("2026-10-26", 1), ("2026-11-02", 3)]


def test_grouping_by_reporter_category_and_severity(city):
    rows = stats(city, group_by="reporter", period="month", start=date(2026, 11, 1))["rows"]
    assert {r["reporter"] for r in rows} == {"reporter-C", "reporter-D", "reporter-E", "reporter-F"}
    [row] = stats(city, group_by="category", start=date(2026, 11, 1))["rows"]
    assert row["category"] == "street_light" and row["opened"] == 4
    assert stats(city, group_by="severity", start=date(2026, 11, 1))["rows"][0]["severity"] == "normal"


def test_a_station_sees_only_its_own_grids(city):
    other = Identity(role="station", user="zhou", area="S2")
    assert stats(city, identity=other)["rows"] == []
    assert len(stats(city, identity=STATION)["rows"]) == 3
    [grid] = stats(city, identity=STATION, group_by="grid", start=date(2026, 11, 1))["rows"]
    assert grid["area_id"] == "G1"


def test_a_ranking_orders_the_groups_of_a_period_by_the_measure(city):
    rows = stats(city, group_by="reporter", start=date(2026, 11, 1), rank_by="time_to_close_median",
                 descending=False)["rows"]
    assert [(r["reporter"], r["rank"]) for r in rows] == [
        ("reporter-C", 1), ("reporter-E", 1), ("reporter-D", 3), ("reporter-F", None)]


def test_the_replay_of_the_same_policy_repeats_what_happened(city):
    from shared.policy import parse_policy

    answer = city.run(handlers.replay_policy, handlers.Replay(parse_policy(POLICY), date(2026, 9, 1),
                                                              date(2026, 12, 1)))
    total = answer["total"]
    assert total["cases"] == 6 and total["current"] == total["new"]
    assert total["current"]["escalations"] == {"1": 2, "2": 1, "3": 0}  # B from 1; F from 1 and 2
    assert total["current"]["closed_on_time"] == 4  # A, C, D (with its extension), E


def test_a_longer_first_level_would_have_kept_b_at_the_grid(city):
    from shared.policy import parse_policy

    longer = parse_policy(POLICY.replace('1 = "4 working_hours"', '1 = "3 working_days"'))  # to Tue 13 Oct
    total = city.run(handlers.replay_policy, handlers.Replay(longer, date(2026, 10, 1), date(2026, 11, 1)))["total"]
    assert total["current"]["escalations"]["1"] == 1 and total["new"]["escalations"]["1"] == 0
    assert total["new"]["closed_on_time"] == 1 and total["current"]["closed_on_time"] == 0


def test_a_case_without_a_statistics_row_gets_one_from_the_rebuild(city):
    from services.escalation.store import case_facts

    with city.engine.begin() as db:
        db.execute(case_facts.delete().where(case_facts.c.case_id == "A"))
    assert city.run(handlers.refresh_facts, 1000) == 1
    assert city.run(handlers.refresh_facts, 1000) == 0
    [september] = [r for r in stats(city)["rows"] if r["period_start"] == "2026-09-01"]
    assert september["time_to_close"]["median"] == 685800.0


# -- the monthly review (考核): by closing period, calendar time per level, the final deadline ------------

def test_by_closing_month_october_holds_the_two_cases_closed_in_it_one_opened_in_september(city):
    """A (opened 30 Sep) and B closed in October; C, D, E in November; F is open."""
    rows = {r["period_start"]: r for r in stats(city, by="closed")["rows"]}
    assert sorted(rows) == ["2026-10-01", "2026-11-01"]
    october = rows["2026-10-01"]
    assert (october["opened"], october["closed"], october["closure_rate"]) == (2, 2, 1.0)
    assert october["on_time_rate"] == 0.5 and october["on_time_rate_with_extensions"] == 0.5  # B missed level 1
    assert october["on_time_rate_final"] == 1.0, "B was fixed at level 2 before level 2's deadline"
    assert october["overdue"] == 1 and october["escalation_rate"] == 0.5
    assert october["time_to_close"]["median"] == (685800.0 + 243000.0) / 2
    november = rows["2026-11-01"]
    assert (november["opened"], november["closed"], november["overdue"]) == (3, 3, 0)
    assert november["on_time_rate"] == pytest.approx(2 / 3) and november["on_time_rate_with_extensions"] == 1.0
    assert november["rework_rate"] == pytest.approx(1 / 3)


def test_by_closing_day_the_periods_are_local_closing_dates_half_open(city):
    days = stats(city, by="closed", period="day", start=date(2026, 11, 3), end=date(2026, 11, 5))["rows"]
    assert [(r["period_start"], r["closed"]) for r in days] == [("2026-11-03", 1)]  # C; D closed on the 5th


def test_on_time_against_the_final_deadline_beside_never_late_at_any_level(city):
    october = next(r for r in stats(city)["rows"] if r["period_start"] == "2026-10-01")  # B, opened in October
    assert (october["on_time_rate"], october["on_time_rate_final"]) == (0.0, 1.0)
    november = next(r for r in stats(city)["rows"] if r["period_start"] == "2026-11-01")
    assert november["on_time_rate_final"] == 1.0 and november["on_time_rate"] == pytest.approx(2 / 3)


def test_calendar_time_at_each_level_beside_working_time(city):
    september = next(r for r in stats(city)["rows"] if r["period_start"] == "2026-09-01")
    assert september["calendar_at_level"]["1"]["median"] == 669600.0  # A: 30 Sep 16:30 to 8 Oct 10:30
    october = next(r for r in stats(city)["rows"] if r["period_start"] == "2026-10-01")
    # B: level 1 Fri 15:30 to the missed deadline Sat 10:30 (19 h); level 2 to Mon 10:00 (47.5 h)
    assert october["calendar_at_level"]["1"]["median"] == 68400.0
    assert october["calendar_at_level"]["2"]["median"] == 171000.0
    november = next(r for r in stats(city)["rows"] if r["period_start"] == "2026-11-01")
    # level 1 in calendar seconds: C 10800 (the suspension left out), E 14400, D 25200, F 133200
    assert november["calendar_at_level"]["1"] == {"median": 19800.0, "p90": pytest.approx(100800.0)}
    assert november["calendar_at_level"]["2"] == {"median": 86400.0, "p90": 86400.0}  # F
    closed = next(r for r in stats(city, by="closed")["rows"] if r["period_start"] == "2026-11-01")
    assert closed["calendar_at_level"]["1"] == {"median": 14400.0, "p90": pytest.approx(23040.0)}


def test_the_csv_has_the_new_columns_named_in_both_languages(city):
    from services.escalation import exports

    answer = stats(city, by="closed")
    for lang, final, calendar in (("zh", "按最终时限结案率", "工作站级停留日历用时中位数（小时）"),
                                  ("en", "on-time rate against the final deadline",
                                   "calendar time at level 2 (station), median (hours)")):
        columns, names, rows = exports.closure_times_table(answer, lang, area_names={},
                                                           department_names=lambda i: None,
                                                           category_names=lambda c: None)
        assert {"on_time_rate_final", "calendar_at_level_2_median", "time_at_level_2_median"} <= set(columns)
        assert final in names and calendar in names
    assert answer["by"] == "closed"


def test_departments_are_counted_by_the_day_they_were_assigned_or_by_the_day_they_fed_back(city):
    """``by=closed`` with ``group_by=department`` answered 422: the monthly review of a department's work
    counts the assignments it closed in the month (its feedback, done or declined)."""
    from datetime import UTC, datetime

    from services.escalation.store import assignments

    def at(month, day):  # 10:00 in Shanghai
        return datetime(2026, month, day, 2, tzinfo=UTC)

    rows = [  # made in September, done in October; made in October, declined in November; made, never fed back
        {"case_id": "C", "seq": 90, "department_id": "water", "role": "lead", "status": "done",
         "assigned_at": at(9, 20), "deadline_at": at(10, 10), "overdue": False, "acknowledged_at": at(9, 21),
         "feedback_at": at(10, 3)},
        {"case_id": "B", "seq": 90, "department_id": "water", "role": "co", "status": "declined",
         "assigned_at": at(10, 5), "deadline_at": at(10, 8), "overdue": True, "acknowledged_at": None,
         "feedback_at": at(11, 2)},
        {"case_id": "F", "seq": 90, "department_id": "water", "role": "co", "status": "assigned",
         "assigned_at": at(10, 6), "deadline_at": None, "overdue": False, "acknowledged_at": None,
         "feedback_at": None}]
    with city.engine.begin() as db:
        db.execute(assignments.insert(), rows)
    try:
        opened = {r["period_start"]: r for r in stats(city, group_by="department")["rows"]}
        closed = {r["period_start"]: r for r in stats(city, group_by="department", by="closed")["rows"]}
    finally:
        with city.engine.begin() as db:
            db.execute(assignments.delete().where(assignments.c.seq == 90))
    assert {p: r["assigned"] for p, r in opened.items()} == {"2026-09-01": 1, "2026-10-01": 2}
    assert {p: (r["assigned"], r["done"], r["declined"], r["on_time"]) for p, r in closed.items()} == {
        "2026-10-01": (1, 1, 0, 1), "2026-11-01": (1, 0, 1, 0)}
    assert closed["2026-11-01"]["decline_rate"] == 1.0 and closed["2026-10-01"]["department"] == "water"


def test_a_statistics_row_from_before_the_closing_periods_is_recomputed_by_the_rebuild(city):
    from services.escalation.store import case_facts

    with city.engine.begin() as db:
        db.execute(case_facts.update().where(case_facts.c.case_id == "B").values(
            facts_version=1, closed_day=None, closed_week=None, closed_month=None, on_time_final=0))
    assert city.run(handlers.refresh_facts, 1000) == 1
    october = next(r for r in stats(city, by="closed")["rows"] if r["period_start"] == "2026-10-01")
    assert october["closed"] == 2 and october["on_time_rate_final"] == 1.0
