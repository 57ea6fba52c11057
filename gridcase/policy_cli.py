"""``gridcase policy check FILE``: validate a policy file, and the city's calendar files with it,
before they are deployed.

Prints one line per category × severity (start level, the limit at each level, the warnings) and the
calendar's coverage, and exits 0; a file that does not hold prints ``FILE:LINE: problem`` on stderr and
exits 1. The calendar is checked as a starting escalation service builds it (one parser): the city's
official files (``--city DIR``'s ``holidays/``, else the packaged ones of its region), each
``FILE:LINE`` on a problem; a date up to ``--until`` (default today) that no source covers is an error;
official files that end within 30 days are a warning. ``gridcase policy replay`` (what a new policy would
have done to recorded cases) is in the same group.
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from shared.config import city_settings
from shared.policy import PolicyError, load_policy


@click.group("policy")
def policy_group():
    """The case policy: categories and their time rules."""


def _limit(amount) -> str:
    return f"{amount.amount:g} {amount.unit}"


@policy_group.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--city", default=None, help="the city (demo, or a folder with holidays/<year>.toml); "
              "default GRIDCASE_CITY or demo")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="every date up to this one must be covered by a holiday source (default: today)")
@click.option("--today", "today", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="the date to check as today (default: today in the city's time zone)")
def check_command(file, city, until, today):
    """Validate FILE and the city's calendar; print each category × severity rule and the calendar's
    coverage, or the first problem with its line."""
    from services.escalation.calendars import Calendars
    from shared.timemodel import CalendarFileError, holiday_folder, read_year_folder

    try:
        policy = load_policy(file)
    except PolicyError as problem:
        _fail(str(problem))
    except (OSError, UnicodeDecodeError) as problem:
        _fail(f"{file}: {problem}")
    city = city or os.environ.get("GRIDCASE_CITY") or "demo"
    local = city_settings(city)
    region = os.environ.get("GRIDCASE_HOLIDAYS") or local.get("holidays") or policy.calendar.region
    zone = os.environ.get("GRIDCASE_TIME_ZONE") or local.get("time_zone") or "Asia/Shanghai"
    region_line = _line(file, r"^\s*region\s*=") or _line(file, r"^\s*\[calendar\]")
    try:
        folder = holiday_folder(city, region)
        calendars = Calendars(policy.calendar, zone, region, read_year_folder(folder, region) if region else {},
                              folder)
    except CalendarFileError as problem:
        _fail(str(problem))
    except ValueError as problem:
        _fail(f"{file}:{region_line}: {problem}")
    click.echo(f"{file}: {len(policy.categories)} categories, severities {', '.join(policy.severities)}, "
               f"holidays {region or 'none'}")
    for category in policy.categories.values():
        for severity, rule in category.rules.items():
            levels = " / ".join(_limit(rule.levels[level]) for level in (1, 2, 3, 4))
            mark = "*" if severity == category.severity else " "
            warn = "; ".join(f"{level}: {list(p)}" for level, p in rule.level_warnings.items())
            click.echo(f"  {category.code:<20} {severity:<8}{mark} from {rule.start_level:<9} {levels}; "
                       f"verify {_limit(rule.verification)}; warn {list(rule.warnings)}"
                       + (f" (level {warn})" if warn else ""))
    for warning in policy.early_warnings:
        where = f"within {warning.radius_m:g} m" if warning.kind == "cluster" else "in one grid"
        click.echo(f"  early warning {warning.name}: {warning.min_reports} {warning.category or warning.group} "
                   f"reports {where} in {_window(warning.window)} ({warning.kind})")
    today = today.date() if today else datetime.now(ZoneInfo(zone)).date()
    coverage = calendars.coverage
    click.echo(f"calendar: {region or 'no holidays'}; official files {', '.join(map(str, coverage.years)) or 'none'}"
               f"{' in ' + coverage.folder if coverage.folder else ''}; statutory_fallback "
               f"{'on (provisional)' if coverage.statutory_fallback else 'off'}; {len(policy.calendar.units)} "
               "unit calendars")
    last = until.date() if until else today
    for day in sorted({today, last}):
        report = coverage.report(day)
        if report["status"] == "gap":
            _fail(f"{file}:{region_line}: {report['message']}")
    report = coverage.report(today)
    if report["status"] != "ok":
        click.echo(f"{file}:{region_line}: warning: {report['message']}", err=True)
    else:
        click.echo(f"  {report['message']}")


def _window(seconds: float) -> str:
    for unit, length in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % length == 0 and seconds >= 2 * length:
            return f"{seconds / length:g} {unit}"
    return f"{seconds:g} seconds"


def _line(file: str, pattern: str) -> int | None:
    import re

    try:
        for number, text in enumerate(open(file, encoding="utf-8-sig").read().splitlines(), start=1):  # noqa: SIM115
            if re.search(pattern, text):
                return number
    except OSError:
        return None
    return None


def _fail(message: str):
    click.echo(message, err=True)
    raise SystemExit(1)


@policy_group.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "day_from", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="first local date of the cases' opening, included")
@click.option("--to", "day_to", type=click.DateTime(["%Y-%m-%d"]), required=True, help="last local date, excluded")
@click.option("--json", "as_json", is_flag=True, help="print the answer of POST /escalation/v1/stats/replay")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def replay_command(file, day_from, day_to, as_json, data_dir):
    """What would FILE have done to the cases opened in [--from, --to)? Automatic escalations from each
    level, overdue at headquarters and closed on time, now and under FILE, per unit and category."""
    from services.escalation import bootstrap, handlers
    from shared.config import from_env

    try:
        policy = load_policy(file)
    except PolicyError as problem:
        click.echo(str(problem), err=True)
        raise SystemExit(1) from None
    if day_to <= day_from:
        raise click.BadParameter("--to must be after --from")
    service = bootstrap.build(from_env(data_dir), web=False)
    answer = service.run(handlers.replay_policy, handlers.Replay(policy, day_from.date(), day_to.date()))
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False, indent=2))
        return
    click.echo(f"cases opened {answer['from']} to {answer['to']} (excluded): now → under {file}")
    header = f"{'unit':<16} {'category':<20} {'cases':>5}  {'esc 1':>9} {'esc 2':>9} {'esc 3':>9} " \
             f"{'overdue':>9} {'on time':>9}"
    click.echo(header)
    for row in [*answer["rows"], {**answer["total"], "unit": "total", "category": ""}]:
        cur, new = row["current"], row["new"]
        cells = [f"{cur['escalations'][k]}→{new['escalations'][k]}" for k in ("1", "2", "3")]
        cells += [f"{cur['overdue']}→{new['overdue']}", f"{cur['closed_on_time']}→{new['closed_on_time']}"]
        click.echo(f"{row['unit']:<16} {row['category']:<20} {row['cases']:>5}  " + " ".join(f"{c:>9}" for c in cells))


@click.group("stats")
def stats_group():
    """The closure-time statistics."""


@stats_group.command("rebuild")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def rebuild_command(data_dir):
    """Compute the statistics rows of cases that have none (cases opened before they existed), then
    every rollup of the statistics again; every other case's row, and the rollups, are kept current by
    each change to it."""
    from services.escalation import bootstrap, handlers
    from shared.config import from_env

    service = bootstrap.build(from_env(data_dir), web=False)
    total = 0
    while done := service.run(handlers.refresh_facts, 1000):
        total += done
    click.echo(f"{total} cases counted")
    days = service.run(handlers.refresh_rollups, True)
    click.echo(f"rollups recomputed for {days} (day, sub-center) pairs")
