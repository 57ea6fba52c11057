"""The timeline of a case: the entries (``Step``) every action appends, the bus events it publishes,
and the ``Outcome`` value an action returns (after Grafana OnCall's escalation step results).

A timeline entry is ``{at, type, level, actor, note}`` (the timeline's contract), ``level`` being the level
after the step; timer steps also carry ``scheduled_at``, the deadline that was due, next to ``at``,
when it actually fired.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from shared.vocabulary import Level, StepType

if TYPE_CHECKING:
    from services.escalation.domain.cases import Case

__all__ = ["SYSTEM", "Event", "Outcome", "Step", "StepType", "record"]

#: The actor of the automatic steps (deadlines, re-routing by a new area version).
SYSTEM = "system"


@dataclass(frozen=True)
class Step:
    """One timeline entry: ``level`` is the level after the step; ``actor`` a user name or ``system``.
    ``scheduled_at`` is set on timer steps only: the deadline that was due (``at`` is when it fired)."""

    at: datetime
    type: StepType
    level: Level
    actor: str
    note: str = ""
    scheduled_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    """A bus event to publish: ``type`` such as ``case.acknowledged``, and the step it reports."""

    type: str
    step: Step
    detail: Mapping = field(default_factory=dict)  # what the step does not say (``passed``, an ``amount``)


@dataclass(frozen=True)
class Outcome:
    """What one action or tick did. Empty when it did nothing (a stale tick, an unchanged re-route)."""

    steps: tuple[Step, ...] = ()
    events: tuple[Event, ...] = ()

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.steps + other.steps, self.events + other.events)

    def __bool__(self) -> bool:
        return bool(self.steps)


def record(case: Case, type_: StepType, actor: str, now: datetime, note: str = "", *,
           event: str | None = None, scheduled_at: datetime | None = None, detail: Mapping | None = None) -> Outcome:
    """One step at the case's current level and its event (``case.<type>`` unless named)."""
    step = Step(now, type_, case.level, actor, note, scheduled_at)
    return Outcome((step,), (Event(event or f"case.{type_}", step, detail or {}),))
