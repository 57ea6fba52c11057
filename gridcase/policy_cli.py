"""``gridcase policy check FILE``: validate a policy file before it is deployed.

Prints one line per category × severity (start level and the limit at each level) and exits 0; a
file that does not hold prints ``FILE:LINE: problem`` on stderr and exits 1. ``gridcase policy replay``
(what a new policy would have done to recorded cases) is in the same group.
"""
from __future__ import annotations

import json

import click

from shared.policy import PolicyError, load_policy


@click.group("policy")
def policy_group():
    """The case policy: categories and their time rules."""


def _limit(amount) -> str:
    return f"{amount.amount:g} {amount.unit}"


@policy_group.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def check_command(file):
    """Validate FILE; print each category × severity rule, or the first problem with its line."""
    try:
        policy = load_policy(file)
    except PolicyError as problem:
        click.echo(str(problem), err=True)
        raise SystemExit(1) from None
    except (OSError, UnicodeDecodeError) as problem:
        click.echo(f"{file}: {problem}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{file}: {len(policy.categories)} categories, severities {', '.join(policy.severities)}, "
               f"holidays {policy.calendar.region or 'none'}")
    for category in policy.categories.values():
        for severity, rule in category.rules.items():
            levels = " / ".join(_limit(rule.levels[level]) for level in (1, 2, 3, 4))
            mark = "*" if severity == category.severity else " "
            click.echo(f"  {category.code:<20} {severity:<8}{mark} from {rule.start_level:<9} {levels}; "
                       f"verify {_limit(rule.verification)}; warn {list(rule.warnings)}")


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
    """Compute the statistics rows of cases that have none (cases opened before they existed); every
    other case's row is kept current by each change to it."""
    from services.escalation import bootstrap, handlers
    from shared.config import from_env

    service = bootstrap.build(from_env(data_dir), web=False)
    total = 0
    while done := service.run(handlers.refresh_facts, 1000):
        total += done
    click.echo(f"{total} cases counted")
