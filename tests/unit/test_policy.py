"""The policy file: groups and classes, rules per category × severity in any unit, a
working calendar, validation that names the line, and the snapshot frozen onto a case."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridcase.cli import main
from services.escalation.calendars import Calendars, time_policy
from services.escalation.domain.deadlines import Limit, TimePolicy
from shared.owners import Owners
from shared.policy import DEFAULT_FILE, PolicyError, load_policy, parse_policy

SHIPPED = load_policy()
GOOD = DEFAULT_FILE.read_text(encoding="utf-8")


def problem(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.toml")
    return caught.value


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_shipped_policy_groups_its_categories_as_gb_t_30428_does():
    assert SHIPPED.groups["facilities"]["zh"] == "部件" and SHIPPED.groups["events"]["zh"] == "事件"
    light = SHIPPED.describe(SHIPPED.category("street_light"))
    assert light["group"] == {"code": "facilities", "zh": "部件", "en": "Facilities"}
    assert light["class"]["zh"] == "公用设施"


def test_a_rule_is_looked_up_through_defaults_severity_category_and_category_severity():
    hazard = SHIPPED.category("safety_hazard")
    assert hazard.rule("urgent").levels[3].to_dict() == {"amount": 2.0, "unit": "hours"}  # category × severity
    assert hazard.rule("urgent").verification.to_dict() == {"amount": 4.0, "unit": "hours"}  # severity
    assert hazard.rule("normal").levels[1].unit == "working_hours"  # defaults
    road = SHIPPED.category("road_damage").rule("normal")
    assert road.levels[3].to_dict() == {"amount": 5.0, "unit": "working_days"}  # the category's own
    assert road.warnings == (0.5, 0.8) and road.max_extensions == 2


def test_an_unknown_severity_reads_as_the_category_s_default():
    light = SHIPPED.category("street_light")
    assert light.rule("catastrophic") == light.rule("normal")


def test_issue_8_s_policy_file_still_loads_in_calendar_hours():
    old = load_policy(Path(__file__).parents[1] / "support" / "calendar_hours_policy.toml")
    assert old.category("neighbour_dispute").rule().levels[4].to_dict() == {"amount": 120.0, "unit": "hours"}
    assert old.category("safety_hazard").start_level == "subcenter"


def test_a_toml_syntax_error_names_the_parser_s_line():
    assert problem("version = 1\n[[categories]\n").line == 2


def test_a_bad_unit_names_the_line_of_its_key():
    text = GOOD.replace('1 = "4 working_hours"', '1 = "4 fortnights"')
    error = problem(text)
    assert error.line == line_of(text, "fortnights") and "fortnights" in str(error)


def test_a_bad_category_key_names_the_category_s_line():
    text = GOOD.replace('class = "roads"', 'class = "rivers"')
    assert problem(text).line == line_of(text, '"rivers"')
    text = GOOD.replace('code = "road_damage"\nzh = "道路破损"', 'code = "road_damage"\nzh = ""')
    assert problem(text).line == line_of(text, 'code = "road_damage"')


def test_warnings_must_be_ascending_fractions():
    text = GOOD.replace("warnings = [0.5, 0.8]               #", "warnings = [0.8, 0.5]               #")
    assert "ascending" in str(problem(text))
    text = GOOD.replace("warnings = [0.5, 0.8]               #", "warnings = [1.5]               #")
    assert problem(text).line == line_of(text, "[1.5]")


def test_a_bare_number_is_hours_and_a_level_may_be_named():
    text = '[[categories]]\ncode = "other"\nzh = "其他"\nen = "Other"\nlevels = { station = 3, 4 = "2 working_days" }\n'
    rule = parse_policy(text).category("other").rule()
    assert rule.levels[2].to_dict() == {"amount": 3.0, "unit": "hours"}
    assert rule.levels[4].to_dict() == {"amount": 2.0, "unit": "working_days"}


def test_a_policy_without_the_category_other_is_refused():
    assert "other" in str(problem('[[categories]]\ncode = "x"\nzh = "x"\nen = "x"\n'))


def test_working_hours_that_overlap_are_refused_on_their_line():
    text = GOOD.replace('tue = ["08:30-12:00", "13:00-17:30"]', 'tue = ["08:30-12:00", "11:00-17:30"]')
    assert "overlap" in str(problem(text))


def test_a_unit_calendar_needs_an_area_and_real_dates():
    text = GOOD + '\n[[calendar.units]]\narea = "S1"\nextra_holidays = ["2026-13-01"]\n'
    error = problem(text)
    assert error.line == len(text.splitlines()) - 2 and "2026-13-01" in str(error)


def test_the_snapshot_carries_every_limit_the_warnings_and_the_calendar():
    calendars = Calendars(SHIPPED.calendar, "Asia/Shanghai", "CN")
    frozen = time_policy(SHIPPED.category("street_light").rule(), calendars.for_owners(Owners.from_ids({"grid": "G1"})))
    assert frozen.limit(3) == Limit(3, "working_days") and frozen.warnings == (0.5, 0.8)
    assert frozen.calendar.time_zone == "Asia/Shanghai" and frozen.calendar.region == "CN"
    assert frozen.max_extension_total == Limit(16, "working_hours")
    assert TimePolicy.from_dict(frozen.to_dict()) == frozen


def test_a_unit_s_own_calendar_goes_to_the_cases_it_owns():
    text = GOOD + '\n[[calendar.units]]\narea = "S1"\nextra_holidays = [2026-12-01]\n'
    policy = parse_policy(text)
    calendars = Calendars(policy.calendar, "Asia/Shanghai", "CN")
    own = calendars.for_owners(Owners.from_ids({"grid": "G1", "station": "S1"}))
    assert not own.is_working_day(datetime(2026, 12, 1, tzinfo=UTC).date())
    assert calendars.for_owners(Owners.from_ids({"station": "S2"})).is_working_day(datetime(2026, 12, 1).date())


def test_a_new_policy_never_changes_a_stored_snapshot():
    frozen = time_policy(SHIPPED.category("street_light").rule(), Calendars(SHIPPED.calendar, "UTC", "CN").city)
    stored = frozen.to_dict()
    parse_policy(GOOD.replace('1 = "4 working_hours"', '1 = "1 working_hours"'))
    assert TimePolicy.from_dict(stored).limit(1) == Limit(4, "working_hours")


def test_suspension_needs_approval_unless_the_policy_names_the_levels_that_may_suspend_at_once():
    assert SHIPPED.category("street_light").rule().suspend_without_approval == ()
    text = GOOD.replace("suspend_without_approval = []", 'suspend_without_approval = ["hq", 3]')
    rule = parse_policy(text).category("street_light").rule()
    assert rule.suspend_without_approval == (3, 4)
    frozen = time_policy(rule, Calendars(SHIPPED.calendar, "UTC", "CN").city)
    assert frozen.suspend_without_approval == (3, 4) and TimePolicy.from_dict(frozen.to_dict()) == frozen
    bad = GOOD.replace("suspend_without_approval = []", 'suspend_without_approval = ["mayor"]')
    error = problem(bad)
    assert "mayor" in str(error) and error.line == line_of(bad, '["mayor"]')


def test_a_case_frozen_before_suspensions_needed_approval_keeps_suspending_at_once():
    stored = time_policy(SHIPPED.category("street_light").rule(), Calendars(SHIPPED.calendar, "UTC", "CN").city)
    old = {k: v for k, v in stored.to_dict().items() if k != "suspension"}
    assert TimePolicy.from_dict(old).suspend_without_approval == (1, 2, 3, 4)


def test_gridcase_policy_check_prints_the_rules_or_the_line_of_a_problem(tmp_path):
    result = CliRunner().invoke(main, ["policy", "check", str(DEFAULT_FILE), "--today", "2026-12-04"])
    assert result.exit_code == 0 and "street_light" in result.output and "3 working_days" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('1 = "4 working_hours"', '1 = "4 fortnights"'), encoding="utf-8")
    result = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert result.exit_code == 1 and f"bad.toml:{line_of(bad.read_text(), 'fortnights')}:" in result.output


def test_a_holiday_region_no_data_package_knows_is_refused():
    with pytest.raises(ValueError, match="ZZ"):
        Calendars(SHIPPED.calendar, "UTC", "ZZ")
    assert Calendars(SHIPPED.calendar, "Europe/Berlin", "DE-BE").city.region == "DE-BE"


def test_a_category_is_internal_unless_the_city_marks_it_public_and_sensitive_ones_are_named():
    public = {code for code, c in SHIPPED.categories.items() if c.public}
    assert public == {"street_light", "manhole_cover", "road_damage", "illegal_dumping", "fire_lane_blocked"}
    assert {code for code, c in SHIPPED.categories.items() if c.sensitive} == {"illegal_dumping", "fire_lane_blocked"}
    text = GOOD.replace('code = "other"\n', 'code = "other"\npublic = "yes"\n')
    found = problem(text)
    assert "public is true or false" in found.message and found.line == line_of(text, 'public = "yes"')
