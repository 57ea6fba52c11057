"""Factories for escalation's domain tests: a case in a four-level city, its actors, a fixed clock."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.escalation.domain.actions import perform
from services.escalation.domain.cases import Case, open_case
from services.escalation.domain.deadlines import Limit, TimePolicy
from services.escalation.domain.permissions import Actor
from shared.owners import AreaRef, Owners

#: The first policy format's file (calendar hours only), for tests whose arithmetic assumes it.
CALENDAR_HOURS_POLICY = Path(__file__).with_name("calendar_hours_policy.toml")
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
OWNERS = Owners(grid=AreaRef("G1", "网格 1"), station=AreaRef("S1", "工作站 1"),
                subcenter=AreaRef("C1", "分中心 1"), hq=AreaRef("HQ", "指挥部"))
OTHER_OWNERS = Owners(grid=AreaRef("G9", "网格 9"), station=AreaRef("S9", "工作站 9"),
                      subcenter=AreaRef("C1", "分中心 1"), hq=AreaRef("HQ", "指挥部"))
#: Hours at levels 1–4 (as the default policy), 24 h to verify, two extensions of 48 h in all.
POLICY = TimePolicy((Limit(4), Limit(8), Limit(24), Limit(48)), verification=Limit(24), max_extensions=2,
                    max_extension_total=Limit(48))

GRID_WORKER = Actor("grid_worker", "wang", "G1")
STATION = Actor("station", "li", "S1")
SUBCENTER = Actor("subcenter", "zhao", "C1")
COMMAND = Actor("command", "chen", "HQ")
SUPERVISOR = Actor("supervisor", "sun")
ADMIN = Actor("admin", "root")
OTHER_GRID_WORKER = Actor("grid_worker", "liu", "G2")
OTHER_STATION = Actor("station", "zhou", "S2")
#: The owner of a case at each level.
OWNER = {1: GRID_WORKER, 2: STATION, 3: SUBCENTER, 4: COMMAND}


def new_case(**overrides) -> Case:
    """A case opened at ``NOW`` at the grid of ``OWNERS`` with ``POLICY``; any argument overridden."""
    arguments = {"id": "c1", "number": "20260105-000001", "category": "street_light", "severity": "normal",
                 "owners": OWNERS, "start_level": 1, "policy": POLICY, "now": NOW}
    case, _ = open_case(**{**arguments, **overrides})
    return case


def suspended(case: Case, at=NOW, reason: str = "waiting for parts"):
    """挂账 as the rules have it: the owner asks and the level above (a supervisor above headquarters)
    approves, both at ``at``; returns the approval's outcome."""
    perform(case, "suspend", OWNER[int(case.level)], at, reason=reason)
    above = next((level for level in range(int(case.level) + 1, 5) if case.owners.at(level)), None)
    return perform(case, "approve_suspension", OWNER[above] if above else SUPERVISOR, at)


def resolved_case(level: int = 1, at=NOW) -> Case:
    """A case resolved at ``level`` (started there), awaiting verification."""
    case = new_case(start_level=level)
    perform(case, "resolve", OWNER[level], at, note="fixed")
    return case


def closed_case(at=NOW) -> Case:
    case = resolved_case(at=at)
    perform(case, "verify", STATION, at, passed=True)  # a grid worker's own fix: the station checks it
    return case
