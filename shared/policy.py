"""The case policy shared by intake (categories), dispatch (start level) and escalation (deadlines).

Read from a TOML file (``GRIDCASE_POLICY_FILE``, default the packaged ``policy.toml``). Escalation
freezes the hours of a case's category onto the case when it opens, so editing the policy never
changes a case in flight.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from shared.vocabulary import AREA_LEVELS, Level

DEFAULT_FILE = Path(__file__).with_name("policy.toml")
LEVEL_NAMES = {level.value: level.area for level in Level}


@dataclass(frozen=True)
class Category:
    code: str
    zh: str
    en: str
    severity: str
    start_level: str
    hours: dict[int, float]  # level number → time limit at that level
    unit: str | None = None  # an area id that takes every case of this category (e.g. a specialised station)


@dataclass(frozen=True)
class Policy:
    categories: dict[str, Category]

    def category(self, code: str) -> Category:
        return self.categories[code]


def load_policy(path: str | Path | None = None) -> Policy:
    data = tomllib.loads(Path(path or DEFAULT_FILE).read_text(encoding="utf-8"))
    defaults = {int(k): float(v) for k, v in data["levels"].items()}
    categories = {}
    for raw in data["categories"]:
        start = raw.get("start_level", "grid")
        if start not in AREA_LEVELS:
            raise ValueError(f"category {raw['code']}: unknown start_level {start!r}")
        hours = {**defaults, **{int(k): float(v) for k, v in raw.get("hours", {}).items()}}
        if any(h <= 0 for h in hours.values()):
            raise ValueError(f"category {raw['code']}: time limits must be positive")
        categories[raw["code"]] = Category(raw["code"], raw["zh"], raw["en"], raw.get("severity", "normal"),
                                           start, hours, raw.get("unit"))
    return Policy(categories)
