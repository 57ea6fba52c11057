"""Policy values are bounded, each bound a finding that names the line (``FILE:LINE: problem``): limit
sizes (at most a year), nesting, text size and the counts of categories, severities, warnings,
extensions, unit calendars, dates and periods. Before, a replay body nested 5,000 deep or a limit of
``1e15``, ``1e300`` or ``inf`` answered 500, ``"1000000000 working_days"`` cost 132 s of CPU, and a city
started with ``inf`` dead-lettered every case."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from services.escalation import bootstrap
from services.escalation.domain.actions import perform
from services.escalation.domain.errors import InvalidArgument
from shared.clock import FakeClock
from shared.config import Settings
from shared.policy import DEFAULT_FILE, MAX_DEPTH, MAX_TEXT, PolicyError, parse_policy
from shared.timemodel import Limit, parse_limit
from tests.support.cases import GRID_WORKER, NOW, new_case

GOOD = DEFAULT_FILE.read_text(encoding="utf-8")
LEVEL_1 = '1 = "4 working_hours"'


def problem(text: str) -> PolicyError:
    started = time.process_time()
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.toml")
    assert time.process_time() - started < 2, "refused before any arithmetic"
    return caught.value


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize("value", ["1e15", "1e300", "inf", "+inf", "nan", "-inf", '"1000000000 working_days"',
                                   '"367 working_days"', '"8785 hours"', '"527041 minutes"', "8785",
                                   '{ amount = 1e300, unit = "hours" }', '{ amount = inf, unit = "working_days" }'])
def test_a_limit_beyond_a_year_or_not_finite_is_refused_on_its_line(value):
    text = GOOD.replace(LEVEL_1, f"1 = {value}")
    error = problem(text)
    assert error.line == line_of(text, f"1 = {value}") and str(error).startswith(f"p.toml:{error.line}: ")


def test_a_year_is_the_longest_limit_in_every_unit():
    for value in ("366 working_days", "8784 working_hours", "8784 hours", "527040 minutes", "31622400 seconds"):
        assert parse_limit(value).seconds <= 366 * 86400
    assert parse_policy(GOOD.replace(LEVEL_1, '1 = "366 working_days"')).category("other").rule().levels[1] \
        == Limit(366, "working_days")


@pytest.mark.parametrize("nested", [
    "x = " + "[" * 5000 + "]" * 5000,
    "x = " + "{a = " * 5000 + "1" + "}" * 5000,
    "x" + ".y" * 5000 + " = 1",
    "[" + "t." * 5000 + "u]",
    "x = [" * 3000,  # never closed: refused before the parser recurses
])
def test_toml_nested_5000_deep_is_refused_on_its_line_not_a_crash(nested):
    text = GOOD + "\n" + nested + "\n"
    error = problem(text)
    assert f"nested more than {MAX_DEPTH} deep" in str(error) and error.line == len(text.splitlines())


def test_nesting_inside_strings_and_comments_does_not_count():
    text = GOOD.replace('en = "Other"', 'en = "Other [[[[[[[[[[[[ {{{{{{{{{{{{"  # ]]]]]]]]]]]] [[[[[[[[[[[[[')
    assert parse_policy(text).category("other").en.startswith("Other [[[")


def test_a_text_over_the_size_limit_is_refused():
    assert "at most 1,000,000 characters" in str(problem(GOOD + "#" * MAX_TEXT))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t + "".join(f'\n[[categories]]\ncode = "c{i}"\nzh = "c"\nen = "c"\ngroup = "events"\n'
                           for i in range(1000)), "at most 1000 categories"),
    (lambda t: t.replace("[severities.normal]", "".join(f"[severities.s{i}]\n" for i in range(20))
                         + "[severities.normal]"), "at most 20 severities"),
    (lambda t: t.replace("warnings = [0.5, 0.8]               #",
                         "warnings = [" + ", ".join(f"0.{i:02d}" for i in range(1, 12)) + "] #"),
     "at most 10 warnings"),
    (lambda t: t.replace("max_count = 2,", "max_count = 1000000,"), "from 0 to 100"),
    (lambda t: t + "\n[calendar.units_]\n", "unknown key 'units_'"),
    (lambda t: t.replace('[calendar]\n', '[calendar]\nunits = [' + ", ".join(f'{{area = "a{i}"}}'
                                                                              for i in range(20_001)) + "]\n"),
     "at most 20,000 unit calendars"),
    (lambda t: t.replace('[calendar]\n', '[calendar]\nextra_holidays = [' + ", ".join(["2026-12-24"] * 1001)
                         + "]\n"), "at most 1000 dates"),
    (lambda t: t.replace('mon = ["08:30-12:00", "13:00-17:30"]',
                         "mon = [" + ", ".join(f'"{h:02d}:00-{h:02d}:30"' for h in range(24)) + ', "23:40-23:50"]'),
     "at most 24 working periods"),
])
def test_counts_are_bounded_each_a_finding(edit, message):
    error = problem(edit(GOOD))
    assert message in str(error) and error.line is not None, str(error)


def test_a_city_started_with_an_infinite_limit_refuses_to_start_instead_of_dead_lettering(tmp_path):
    file = tmp_path / "policy.toml"
    file.write_text(GOOD.replace(LEVEL_1, "1 = inf"), encoding="utf-8")
    with pytest.raises(PolicyError, match="finite"):
        bootstrap._dependencies(Settings(policy_file=str(file)), FakeClock(datetime(2026, 12, 4, tzinfo=UTC)))


@pytest.mark.parametrize("amount", [float("inf"), float("nan"), 1e300, 1e15])
def test_an_extension_request_of_an_unbounded_amount_is_a_clear_argument_error(amount):
    case = new_case()
    with pytest.raises(InvalidArgument) as caught:
        perform(case, "request_extension", GRID_WORKER, NOW, amount={"amount": amount, "unit": "hours"},
                reason="more time")
    assert caught.value.field == "amount"


def test_no_limit_holds_more_than_ten_years_whatever_made_it():
    for bad in (float("inf"), float("nan"), -1.0, 3700 * 24.0):
        with pytest.raises(ValueError):
            Limit(bad, "hours")
    assert Limit(3600 * 24.0, "hours").seconds == 3600 * 86400
