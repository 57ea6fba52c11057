"""A case's four-level closed loop: who owns it, until when, and what happened.

Level 1 is the grid worker, 2 the work station, 3 the sub-center, 4 headquarters. When the
deadline at a level passes, the case moves up one level with a new deadline from the hours frozen
onto the case when it opened (later policy edits never change a case in flight). At level 4 a
missed deadline marks the case overdue; there is nowhere higher to go.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.policy import LEVEL_NAMES
from shared.vocabulary import Level

OPEN, RESOLVED, CLOSED, SUSPENDED = "open", "resolved", "closed", "suspended"
TOP_LEVEL = 4


@dataclass(frozen=True)
class Owner:
    level: int
    area_id: str
    area_name: str


@dataclass(frozen=True)
class Step:
    """One entry of the timeline: what happened, to which level, by whom."""
    at: datetime
    action: str
    actor: str
    from_level: int | None
    to_level: int | None
    note: str = ""


@dataclass
class Case:
    id: str
    number: str
    category: str
    severity: str
    status: str
    level: int
    areas: dict[str, dict | None]  # level name → {"id", "name"} or None (a point in no grid)
    hours: dict[int, float]
    opened_at: datetime
    deadline: datetime | None
    overdue: bool = False
    steps: list[Step] = field(default_factory=list)

    @property
    def owner(self) -> Owner:
        ref = self.areas[LEVEL_NAMES[self.level]]
        return Owner(self.level, ref["id"], ref["name"])

    @classmethod
    def open(cls, *, id: str, number: str, category: str, severity: str, areas: dict[str, dict | None],
             start_level: str, hours: dict[int, float], now: datetime, triage: bool = False) -> Case:
        level = _owned_level(areas, Level.of(start_level))
        case = cls(id=id, number=number, category=category, severity=severity, status=OPEN, level=level,
                   areas=areas, hours=hours, opened_at=now, deadline=now + timedelta(hours=hours[level]))
        note = "point in no grid: needs triage" if triage else ""
        case.steps.append(Step(now, "opened", "system", None, level, note))
        return case

    def is_due(self, now: datetime) -> bool:
        return self.status == OPEN and self.deadline is not None and now >= self.deadline

    def escalate(self, now: datetime, *, actor: str = "system", reason: str = "deadline passed") -> Step:
        """Move up one level with a fresh deadline (automatic at the deadline, or 上报 by staff)."""
        if self.status != OPEN:
            raise ValueError(f"a {self.status} case cannot be escalated")
        if self.level >= TOP_LEVEL:
            self.overdue = True
            self.deadline = None
            step = Step(now, "overdue", actor, self.level, self.level, reason)
        else:
            previous = self.level
            self.level = _owned_level(self.areas, self.level + 1)
            self.deadline = now + timedelta(hours=self.hours[self.level])
            step = Step(now, "escalated", actor, previous, self.level, reason)
        self.steps.append(step)
        return step

    def transfer(self, areas: dict[str, dict | None], level: str | None, now: datetime, *, actor: str,
                 reason: str) -> Step | None:
        """New owners. Staff naming a level restart the case there with that level's deadline; a
        re-route by a new area version keeps the level and deadline (moving up if that level has no
        owner any more). A closed case keeps its history: nothing changes."""
        if self.status == CLOSED:
            return None
        previous = self.level
        self.areas = areas
        if level is not None:
            self.level = _owned_level(areas, Level.of(level))
            self.deadline = now + timedelta(hours=self.hours[self.level]) if self.status == OPEN else None
            self.overdue = False
            action = "transferred"
        else:
            self.level = _owned_level(areas, self.level)
            action = "rerouted"
        step = Step(now, action, actor, previous, self.level, f"{reason} → {self.owner.area_id}")
        self.steps.append(step)
        return step


def _owned_level(areas: dict[str, dict | None], level: int) -> int:
    """The first level at or above ``level`` that has an owner (a gap has no grid)."""
    while level < TOP_LEVEL and not areas.get(LEVEL_NAMES[level]):
        level += 1
    return level
