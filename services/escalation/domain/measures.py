"""What a case's timeline says about how it was handled: the facts the closure-time statistics count
(the statistics), and the replay of a timeline under another time policy (what-if).

``measure(steps, case, now)`` reads the recorded steps; ``replay(steps, policy, ...)`` re-runs the
deadlines of a policy over the same human actions (acknowledging, resolving, suspending, extending,
escalating by hand, rework) and recomputes what the deadlines would have done: the automatic
escalations from each level, the headquarters overdue flag and whether the case was closed on time.
Recorded automatic steps (escalations, overdue flags, warnings) are the old policy's consequences and
are recomputed, not replayed. The README's "Closure-time statistics" gives every definition.

A report that waited for acceptance (立案) became a case when it was accepted: both read its timeline
from the ``accepted`` step on, as if it had opened then (``as_opened``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from services.escalation.domain.calendar import WorkingCalendar
from services.escalation.domain.deadlines import Limit, TimePolicy, deadline, time_left, working_between
from services.escalation.domain.timeline import SYSTEM, Step
from shared.owners import Owners
from shared.vocabulary import Level, StepType

#: Steps after which a level's clock starts afresh at the step's level.
RESTARTS = frozenset({StepType.RETURNED, StepType.TRANSFERRED, StepType.REWORKED, StepType.REOPENED})


@dataclass(frozen=True)
class Replayed:
    """What a policy's deadlines did (or would have done) to one case."""

    escalations: dict[int, int] = field(default_factory=dict)  # level → automatic escalations from it
    overdue: bool = False  # headquarters' deadline passed
    missed: bool = False  # any deadline passed while the case was being worked on
    closed: bool = False
    on_time: bool = False  # closed, and no deadline missed
    #: closed, and its last resolve came before the final deadline: the deadline in force then (after every
    #: escalation and approved extension), so only headquarters' passed deadline makes it late
    on_time_final: bool = False


def as_opened(steps: Sequence[Step]) -> Sequence[Step]:
    """The timeline of the case as such: from its acceptance (立案), taken as its opening, when the report
    waited for one; otherwise as it is."""
    for index, step in enumerate(steps):
        if step.type == StepType.ACCEPTED:
            return [replace(step, type=StepType.OPENED), *steps[index + 1:]]
    return steps


def replay(steps: Sequence[Step], policy: TimePolicy, owners: Owners, *, extensions: Sequence[Limit] = (),
           until: datetime | None = None) -> Replayed:
    """Re-run ``policy``'s deadlines over the human steps of a timeline (in order), up to ``until``
    (the end of the timeline if None). ``extensions`` are the approved amounts in order (one per
    ``extended`` step); pass ``()`` to judge the case without its extensions. Escalation moves to the
    next owned level of ``owners`` with that level's limit dated from the missed deadline."""
    steps = as_opened(steps)
    calendar = policy.calendar
    level: Level | None = None
    due: datetime | None = None
    left: Limit | None = None
    working = closed = overdue = missed = past_final = resolved_late = False
    escalations: dict[int, int] = {}
    amounts = iter(extensions)

    def advance(t: datetime) -> None:
        nonlocal level, due, overdue, missed, past_final
        while working and due is not None and due <= t:
            missed = True
            if level < Level.HQ:
                escalations[int(level)] = escalations.get(int(level), 0) + 1
                level = owners.owned_level(level.up)
                due = deadline(due, policy.limit(level), calendar)
            else:
                overdue, past_final, due = True, True, None

    for step in steps:
        if step.type == StepType.OPENED:
            level, working, closed, past_final = step.level, True, False, False
            due = deadline(step.at, policy.limit(level), calendar)
            continue
        if level is None:
            continue
        advance(step.at)
        kind = step.type
        if kind in (StepType.OVERDUE, StepType.WARNING) or (kind == StepType.ESCALATED and step.actor == SYSTEM):
            continue  # the old policy's automatic steps: recomputed above
        if kind == StepType.ESCALATED or kind in RESTARTS:
            level, working, closed, past_final = step.level, True, False, False
            due = deadline(step.at, policy.limit(level), calendar)
        elif kind == StepType.SUSPENDED and working:
            left = time_left(due, step.at, policy.limit(level).unit, calendar) if due is not None else None
            working, due = False, None
        elif kind == StepType.RESUMED:
            working = True
            due = deadline(step.at, left, calendar) if left is not None else None
        elif kind == StepType.EXTENDED:
            amount = next(amounts, None)
            if amount is not None and due is not None:
                due = deadline(due, amount, calendar)
        elif kind == StepType.RESOLVED:
            working, due, resolved_late = False, None, past_final
        elif kind == StepType.CLOSED:
            closed = True
        elif kind == StepType.REROUTED and step.level != level:
            level = step.level
    if until is not None:
        advance(until)
    return Replayed(escalations, overdue, missed, closed, closed and not missed, closed and not resolved_late)


@dataclass(frozen=True)
class Facts:
    """One case's contribution to the statistics (seconds are floats; None: did not happen)."""

    opened_at: datetime
    opened_day: date  # the local date (the case's calendar time zone) the case opened
    closed_at: datetime | None
    closed: bool
    escalated: bool  # escalated at least once, by hand or by a deadline
    extended: bool  # at least one approved extension
    reworked: bool  # closed after at least one failed verification (the rework rate's numerator)
    overdue: bool  # missed at least one deadline (an automatic escalation or headquarters' overdue flag)
    on_time: bool  # closed, and no deadline missed even without its approved extensions
    on_time_with_extensions: bool  # closed, and no deadline missed (extensions counted)
    on_time_final: bool  # closed, its last resolve before the final deadline (the one in force then)
    time_to_acknowledge: float | None
    time_to_resolve: float | None
    time_to_close: float | None
    time_at_level: dict[int, float]  # level → working seconds there, suspended working time excluded
    calendar_at_level: dict[int, float]  # the same in calendar seconds
    closed_day: date | None = None  # the local date it closed (closed cases)
    urged: bool = False  # urged (督办) at least once
    urges_late: int = 0  # urges not answered in time
    time_to_respond: float | None = None  # the first urge to its answer, calendar seconds


def _suspended(intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    return sum(max((min(b, end) - max(a, start)).total_seconds(), 0) for a, b in intervals)


def measure(steps: Sequence[Step], policy: TimePolicy, owners: Owners, extensions: Sequence[Limit],
            now: datetime, *, closed_now: bool) -> Facts:
    """The facts of a case from its timeline (``steps`` in order, the first ``opened``).
    ``closed_now``: whether the case is closed at present (a reopened case is not)."""
    steps = as_opened(steps)
    calendar: WorkingCalendar = policy.calendar
    opened_at = steps[0].at
    suspensions: list[tuple[datetime, datetime]] = []
    suspended_at = None
    first_ack = last_resolve = closed_at = None
    escalated = extended = reworked = level4_overdue = auto = False
    awaiting = False
    level_time: dict[int, float] = {}  # completed stints only: the level a case is at now is not counted
    level_calendar: dict[int, float] = {}
    level, entered, working = steps[0].level, opened_at, True

    def leave(t: datetime) -> None:
        if working and entered is not None and t > entered:
            seconds = working_between(entered, t, calendar)
            level_time[int(level)] = level_time.get(int(level), 0.0) + seconds
            level_calendar[int(level)] = level_calendar.get(int(level), 0.0) + (t - entered).total_seconds()

    for step in steps[1:]:
        kind = step.type
        if kind == StepType.ACKNOWLEDGED and first_ack is None:
            first_ack = step.at
        elif kind == StepType.ESCALATED:
            escalated = True
            auto = auto or step.actor == SYSTEM
        elif kind == StepType.EXTENDED:
            extended = True
        elif kind == StepType.REWORKED:
            reworked = True
        elif kind == StepType.OVERDUE and not awaiting:
            level4_overdue = True
        elif kind == StepType.CLOSED:
            closed_at = step.at
        if kind == StepType.RESOLVED:
            last_resolve, awaiting = step.at, True
        elif kind in (StepType.VERIFIED, StepType.REOPENED):
            awaiting = False
        # time at each level: from entering it to leaving it, while worked on (not suspended, not verifying)
        if kind in (StepType.SUSPENDED, StepType.RESOLVED):
            leave(step.at)
            working, entered = False, None
            if kind == StepType.SUSPENDED:
                suspended_at = step.at
        elif kind == StepType.RESUMED:
            if suspended_at is not None:
                suspensions.append((suspended_at, step.at))
                suspended_at = None
            working, entered = True, step.at
        elif kind in (StepType.ESCALATED, *RESTARTS) or (kind == StepType.REROUTED and step.level != level):
            moved = step.scheduled_at if kind == StepType.ESCALATED and step.scheduled_at else step.at
            leave(moved)  # an automatic escalation left the level at the missed deadline, not when it fired
            level, entered, working = step.level, moved, True
    if suspended_at is not None:
        suspensions.append((suspended_at, now))

    def span(end: datetime | None) -> float | None:
        if end is None:
            return None
        return (end - opened_at).total_seconds() - _suspended(suspensions, opened_at, end)

    missed = auto or level4_overdue
    closed = closed_now and closed_at is not None
    strict = replay(steps, policy, owners, extensions=(), until=closed_at if closed else now) if closed else None
    final = replay(steps, policy, owners, extensions=extensions, until=closed_at) if closed else None
    return Facts(
        opened_at=opened_at, opened_day=calendar.local_date(opened_at), closed_at=closed_at if closed else None,
        closed=closed, escalated=escalated, extended=extended, reworked=closed and reworked, overdue=missed,
        on_time=bool(closed and not missed and strict is not None and not strict.missed),
        on_time_with_extensions=closed and not missed,
        on_time_final=bool(final is not None and final.on_time_final),
        closed_day=calendar.local_date(closed_at) if closed else None,
        time_to_acknowledge=span(first_ack), time_to_resolve=span(last_resolve) if closed else None,
        time_to_close=span(closed_at) if closed else None,
        time_at_level=level_time, calendar_at_level=level_calendar, **_urging(steps))


def _urging(steps: Sequence[Step]) -> dict:
    """督办 facts: urged at all, urges not answered in time, and the time from the first urge to its answer."""
    first = next((s.at for s in steps if s.type == StepType.URGED), None)
    answer = next((s.at for s in steps if s.type == StepType.URGE_ANSWERED and first and s.at >= first), None)
    return {"urged": first is not None, "urges_late": sum(s.type == StepType.URGE_OVERDUE for s in steps),
            "time_to_respond": (answer - first).total_seconds() if answer else None}


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week (a statistics week runs Monday to Sunday, local dates)."""
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    """The first of ``day``'s month (a statistics month is a local calendar month)."""
    return day.replace(day=1)
