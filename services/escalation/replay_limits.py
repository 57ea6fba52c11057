"""The what-if replay's limit changes: the running policy's time limits per category × severity × level
(what the desk's replay form starts from), and that policy with some of those limits changed (what the
form sends instead of a whole policy file). ``POST /escalation/v1/stats/replay`` with ``changes``."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from shared.policy import Policy
from shared.timemodel import MAX_LIMIT, UNITS, Limit, parse_limit
from shared.vocabulary import Level
from shared.words import Invalid, Said, word


@dataclass(frozen=True)
class LimitChange:
    """One level's new time limit for one category × severity: ``level`` 1–4, ``amount`` in ``unit``
    (one of ``shared.timemodel.UNITS``)."""

    category: str
    severity: str
    level: int
    amount: float
    unit: str


class ChangeError(ValueError):
    """A change that cannot apply: ``index`` is its place in the list (from 0), ``field`` its key
    (``category``, ``severity``, ``level``, ``amount`` or ``unit``), ``said`` why (a catalogue message,
    ``shared.words.Said``: read in the caller's language); ``str()`` is the English text."""

    def __init__(self, index: int, field: str, code: str, /, **params):
        self.index, self.field, self.said = index, field, Said(code, **params)
        super().__init__(str(self.said))


def limits(policy: Policy) -> dict:
    """The limits a replay's changes start from: ``{"severities": [...], "units": [...], "categories":
    [{"code", "zh", "en", "severity" (the default), "rules": {severity: {"start_level": 1–4, "limits":
    {"1": {"amount", "unit"}, …}}}}]}``; only the levels from the rule's start level up (the levels below
    it are never used, README "Decisions")."""
    categories = []
    for code, category in policy.categories.items():
        rules = {}
        for severity, rule in category.rules.items():
            start = Level.of(rule.start_level).value
            rules[severity] = {"start_level": start, "limits": {
                str(level): limit.to_dict() for level, limit in rule.levels.items() if level >= start}}
        categories.append({"code": code, "zh": category.zh, "en": category.en, "severity": category.severity,
                           "rules": rules})
    return {"severities": list(policy.severities), "units": list(UNITS), "categories": categories}


def with_limits(policy: Policy, changes: Sequence[LimitChange]) -> Policy:
    """``policy`` with each change's level limit replaced in its category × severity rule; everything else
    (calendar, warnings, extension caps, other levels) as it is. ``ChangeError`` naming the change and its
    field when a category or severity is not the policy's, a level is below the rule's start level (never
    used), the same category × severity × level comes twice, or a limit is not positive or longer than a
    year (``shared.timemodel.MAX_LIMIT``, the bound a policy file has)."""
    categories = dict(policy.categories)
    seen: dict[tuple, int] = {}
    for index, change in enumerate(changes):
        category = categories.get(change.category)
        if category is None:
            raise ChangeError(index, "category", "replay.no_category", category=repr(change.category))
        rule = category.rules.get(change.severity)
        if rule is None:
            raise ChangeError(index, "severity", "replay.no_severity", severity=repr(change.severity),
                              choices=", ".join(category.rules))
        start = Level.of(rule.start_level).value
        if change.level < start:
            raise ChangeError(index, "level", "replay.level_unused", category=change.category,
                              severity=change.severity, start=start, level=change.level)
        key = (change.category, change.severity, change.level)
        if key in seen:
            raise ChangeError(index, "level", "replay.level_twice", other=seen[key])
        seen[key] = index
        if change.unit not in UNITS:
            raise ChangeError(index, "unit", "time.unknown_unit", unit=repr(change.unit), choices=", ".join(UNITS))
        if change.amount > MAX_LIMIT[change.unit]:
            raise ChangeError(index, "amount", "replay.over_a_year", amount=f"{change.amount:g}",
                              unit=word("unit", change.unit), max=f"{MAX_LIMIT[change.unit]:g}")
        try:
            limit: Limit = parse_limit({"amount": change.amount, "unit": change.unit})
        except Invalid as problem:
            raise ChangeError(index, "amount", problem.code, **problem.params) from None
        rules = {**category.rules, change.severity: replace(rule, levels={**rule.levels, change.level: limit})}
        categories[change.category] = replace(category, rules=rules)
    return replace(policy, categories=categories)
