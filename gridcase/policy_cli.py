"""``gridcase policy check FILE``: validate a policy file before it is deployed.

Prints one line per category × severity (start level and the limit at each level) and exits 0; a
file that does not hold prints ``FILE:LINE: problem`` on stderr and exits 1. ``gridcase policy replay``
(what a new policy would have done to recorded cases) is in the same group.
"""
from __future__ import annotations

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
