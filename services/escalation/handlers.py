"""Escalation's use cases: open dispatched cases, take staff actions, apply verifications, transfers and
new area versions, and fire the deadlines that passed. Each is one unit of work: load, let the domain
decide (``services.escalation.domain``), save the case with its steps, publish what happened."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from prometheus_client import Histogram

from services.escalation import early_warnings
from services.escalation.calendars import Calendars, time_policy
from services.escalation.domain import acceptance, actions, departments, measures, ownership, statistics, timers
from services.escalation.domain.cases import Case, open_case
from services.escalation.domain.errors import InvalidArgument, Refused
from services.escalation.domain.permissions import LEVEL_ROLE, Actor, verifying_level
from services.escalation.domain.timeline import SYSTEM, Outcome, StepType
from services.escalation.notify.outbox import enqueue_steps
from services.escalation.store import Report
from shared import logs
from shared.auth import Identity
from shared.clock import Clock
from shared.consumer import Unavailable
from shared.departments import Department, handlers_of
from shared.messages import events
from shared.policy import Category, Policy
from shared.uow import UnitOfWork
from shared.vocabulary import Level, Role, Status
from shared.words import Problem, note_message, note_text

log = logs.get("gridcase.escalation")
LAG = Histogram("gridcase_scheduler_lag_seconds", "Deadline to automatic step, in real seconds",
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))


def open_cases(messages: list[events.CaseDispatched], uow: UnitOfWork, *, policy: Policy, clock: Clock,
               calendars: Calendars | None = None) -> None:
    """``case.dispatched`` → each case opens at its start level with that level's deadline, its time
    policy frozen from the category × severity rule and the working calendar of its owners (later
    policy edits never change a case in flight). An unknown category uses ``other``; an unknown
    severity the category's default. A report the policy makes wait for acceptance (立案: its category
    and channel, ``Policy.acceptance_needed``) opens ``pending_acceptance``; its departments are
    assigned when it is accepted."""
    now = clock.now()
    calendars = calendars or Calendars(policy.calendar, "UTC", policy.calendar.region)
    with uow:
        new = []
        city_departments = None
        for m in messages:
            category = policy.categories.get(m.category) or policy.categories["other"]
            frozen = time_policy(category.rule(m.severity), calendars.for_owners(m.owners))
            pending = policy.acceptance_needed(category.code, m.channel)
            case, outcome = open_case(id=m.case_id, number=m.number, category=m.category, severity=m.severity,
                                      owners=m.owners, start_level=m.start_level,
                                      policy=frozen, now=now, triage=m.triage,
                                      location_unverified=m.location_unverified, pending=pending)
            if not pending:
                city_departments = uow.store.departments() if city_departments is None else city_departments
                outcome += departments.open_assignments(case, _handlers(category, case, city_departments), now)
            location = m.location or events.Location(None, None)
            new.append((case, outcome, Report(m.description, location.lon, location.lat, m.reporter, m.reported_at),
                        [{"id": c.id, "distance_m": c.distance_m} for c in m.candidates]))
            publish(uow, case, outcome, cause=m, revision=1, reporter=m.reporter)
        # early warning (预警): its locks, then the audit trail's at commit (see early_warnings)
        early_warnings.reports_arrived(uow, policy, messages, now)
        uow.store.add(new, now)
        uow.commit()


@dataclass(frozen=True)
class TakeAction:
    """A staff action on a case (``POST /escalation/v1/cases/{id}/actions``). ``if_match`` is the ETag
    the caller saw (``*``: whatever the case is now); ``arguments`` are the action's (``to`` names the unit
    of a transfer)."""
    case_id: str
    action: str
    arguments: dict
    identity: Identity
    if_match: str


class StaleETag(Problem):
    """The case changed since the caller read it (412)."""

    status, code = 412, "case.stale"

    def __init__(self, case_id: str):
        super().__init__()
        self.case_id = case_id


def etag(revision: int) -> str:
    return f'"{revision}"'


def take_action(command: TakeAction, uow: UnitOfWork, *, clock: Clock, policy: Policy,
                calendars: Calendars | None = None) -> tuple[Case, int]:
    """Run the action through the action table; returns the case and its new revision. ``LookupError``
    outside the caller's area (404; also for a ``merge`` into a case the caller does not see),
    ``StaleETag`` (412), or the domain's refusal (403, 409, 422).

    The handler turns names into what the domain decides on: a transfer's ``to`` into owners, a
    department's id into the department, a ``severity`` into its category × severity rule (frozen in the
    case's calendar), a merge's ``into`` into that case, and an ``assignee`` (``me``, a user, or null)
    into the person and the units they are known in. An accepted report gets its category's departments.
    A reopening counts for the policy's recurring early-warning rules."""
    now = clock.now()
    calendars = calendars or Calendars(policy.calendar, "UTC", policy.calendar.region)
    with uow:
        case = uow.store.get(command.case_id, command.identity, for_update=True)
        if case is None:
            raise LookupError(command.case_id)
        if command.if_match != "*" and command.if_match != etag(uow.store.revision(case.id)):  # RFC 9110 §13.1.1
            raise StaleETag(command.case_id)
        arguments = dict(command.arguments)
        if command.action == "transfer" and "to" in arguments:
            arguments.update(_transfer_target(uow, arguments.pop("to")))
        if command.action == "assign_department" and "department" in arguments:
            arguments["department"] = _department(uow, case, arguments["department"])
        if command.action == "set_severity" and "severity" in arguments:
            arguments["severity"] = _severity(policy, calendars, case, arguments["severity"])
        into = None
        if command.action == "merge" and "into" in arguments:
            into = arguments["into"] = _merge_target(uow, command.identity, arguments["into"])
        if command.action == "assign" and "assignee" in arguments:
            arguments["assignee"] = _person(uow, command.identity, case, arguments["assignee"])
        outcome = actions.perform(case, command.action, command.identity, now, **arguments)
        if command.action == "accept":
            category = policy.categories.get(case.category) or policy.categories["other"]
            outcome += departments.open_assignments(case, _handlers(category, case, uow.store.departments()), now)
        early_warnings.case_reopened(uow, policy, case, outcome, now)
        changed = [(case, outcome)]
        if into is not None:
            changed.append((into, acceptance.absorb(into, case, command.identity, now)))
        uow.store.save_all(changed, now)
        for each, happened in changed:
            publish(uow, each, happened)
        uow.commit()
    return case, uow.store.revision(case.id)


def _severity(policy: Policy, calendars: Calendars, case: Case, name: object) -> acceptance.Severity:
    """A severity the policy rules for the case's category, as the domain takes it; ``InvalidArgument``
    naming ``severity`` for another."""
    if name not in policy.severities:
        raise InvalidArgument("case.unknown_severity", field="severity", severity=name,
                              choices=", ".join(policy.severities))
    category = policy.categories.get(case.category) or policy.categories["other"]
    rule = category.rule(name)
    return acceptance.Severity(name, time_policy(rule, calendars.for_owners(case.owners)), Level.of(rule.start_level))


class UnknownTarget(Problem, LookupError):
    """A merge names a case the caller does not see (404 about ``into``, as for a case that does not exist)."""

    status, code = 404, "case.no_merge_target"

    def __init__(self, case_id: object):
        super().__init__(field="into")
        self.case_id = case_id


def _merge_target(uow: UnitOfWork, identity: Identity, case_id: object) -> Case:
    """The case a merge names, loaded (and locked) as the caller sees it; ``UnknownTarget`` (404) when
    the caller's area does not hold it, exactly as for a case that does not exist."""
    target = uow.store.get(case_id, identity, for_update=True) if isinstance(case_id, str) else None
    if target is None:
        raise UnknownTarget(case_id)
    return target


#: The people this process has recorded already (``remember_person``), per database: one write per person
#: and unit.
_REMEMBERED: set[tuple[str, str, str, str | None, str | None]] = set()


def remember_person(identity: Identity, uow: UnitOfWork, *, clock: Clock) -> None:
    """Record that the caller works in their unit (``store.remember``), so that colleagues may name them
    a case's handler (承办人); once per person, unit and database in this process."""
    key = (str(uow.engine.url), identity.user, str(identity.role), identity.area, identity.department)
    if key in _REMEMBERED or identity.role not in (Role.STATION, Role.SUBCENTER, Role.COMMAND, Role.DEPARTMENT):
        return
    with uow:
        uow.store.remember(identity, clock.now())
        uow.commit()
    _REMEMBERED.add(key)


def _person(uow: UnitOfWork, identity: Identity, case: Case, user: object) -> acceptance.Person | None:
    """An ``assign``'s ``assignee``: ``None`` (nobody), ``me`` (the caller) or a user, with the units the
    user is known in (``store.units_of``: where they have signed in; the caller's own unit for the caller)."""
    if user is None:
        return None
    if not isinstance(user, str) or not user.strip():
        raise InvalidArgument("case.assignee_type", field="assignee")
    user = identity.user if user == "me" else user.strip()
    units = set(uow.store.units_of(user))
    if user == identity.user:
        units.add(identity.department if identity.role == Role.DEPARTMENT else case.owner.area_id
                  if identity.role == Role.COMMAND else identity.area)
    return acceptance.Person(user, frozenset(u for u in units if u))


def _transfer_target(uow: UnitOfWork, area_id: str) -> dict:
    """The owners and level of the unit a ``transfer`` names (escalation's copy of the active areas);
    whether it may go there is ``ownership.transfer``'s to decide."""
    found = uow.store.owners_of(area_id)
    if found is None:
        raise InvalidArgument("case.no_area", field="to", area=area_id)
    level, owners = found
    return {"owners": owners, "level": level}


def _department(uow: UnitOfWork, case: Case, department_id: object) -> Department:
    """The department an ``assign_department`` names: one of the city's, serving the case's area (the
    whole city, or the case's sub-center); ``InvalidArgument`` naming ``department`` otherwise."""
    found = next((d for d in uow.store.departments() if d.id == department_id), None)
    if found is None:
        raise InvalidArgument("case.no_department", field="department", department=department_id)
    if not _serves(found, case):
        raise InvalidArgument("case.department_elsewhere", field="department", department=found.id)
    return found


def _serves(department: Department, case: Case) -> bool:
    return department.serves in {ref.id for ref in (case.owners.hq, case.owners.subcenter) if ref is not None}


def _handlers(category: Category, case: Case, city: list[Department]) -> list[tuple[Department, str]]:
    """The policy's departments for a new case of ``category``: the lead first, then the co-handlers,
    each one of the city's departments serving the case's area (a department serving another
    sub-center's district is left out)."""
    chosen = handlers_of(category.code, city, lead=category.lead_department, co=category.co_departments)
    by_id = {d.id: d for d in city if _serves(d, case)}
    pairs = [(by_id[chosen.lead], "lead")] if chosen.lead in by_id else []
    return pairs + [(by_id[c], "co") for c in chosen.co if c in by_id]


def keep_departments(message: events.DepartmentsPublished, uow: UnitOfWork) -> None:
    """``departments.published`` → escalation's own copy of the city's departments."""
    with uow:
        uow.store.replace_departments(message.version, message.departments)
        uow.commit()


def verify_case(message: events.CaseVerified, uow: UnitOfWork, *, clock: Clock) -> None:
    """``case.verified`` (the grid worker's on-site check, taken by intake) → closed, or rework. A
    verification the case no longer awaits (a second submission) changes nothing."""
    now = clock.now()
    with uow:
        case = uow.store.get(message.case_id, for_update=True)
        if case is None:
            raise Unavailable(f"case {message.case_id} has not opened yet")
        on_site = verifying_level(case)  # intake checked the caller against the level escalation published
        verifier = Actor(LEVEL_ROLE[on_site], message.verifier, case.owners.at(on_site).id)
        try:
            outcome = actions.perform(case, "verify", verifier, now, passed=message.passed, note=message.note)
        except Refused as refusal:
            log.warning("verification not applied", case_id=case.id, reason=str(refusal))
            return
        uow.store.save(case, outcome, now)
        publish(uow, case, outcome, cause=message)
        uow.commit()


def transfer_case(message: events.CaseTransferred, uow: UnitOfWork, *, clock: Clock) -> None:
    """``case.transferred`` from dispatch: a new area version proposes new owners (no level). Escalation
    decides (``ownership.reroute``: the level and deadline stay; a closed case keeps its owners; a
    proposal computed before the case's last staff transfer is stale and changes nothing) and
    publishes the owners it decided as its own ``case.transferred``, with the case's revision, which
    dispatch and intake order by, so the three services never disagree. A staff transfer is not
    dispatch's to make (its endpoint answers 410): one still queued from an older dispatch is refused.
    When the case keeps owners other than those proposed (dispatch recorded its proposal), the case is
    saved under a new revision, with no step, and its owners published again, so dispatch takes them
    back. Escalation's own ``case.transferred`` (its decisions) are not read back."""
    if message.envelope is not None and message.envelope.producer == "escalation":
        return
    now = clock.now()
    with uow:
        case = uow.store.get(message.case_id, for_update=True)
        if case is None:  # its case.dispatched is still on the way (another queue): hold and retry
            raise Unavailable(f"case {message.case_id} has not opened yet")
        if message.level is None:
            outcome = timers.rerouted(case, message.owners, now, basis=message.basis)
            if ownership.stale(case, message.basis):
                log.info("a re-route computed before the case's last transfer is not applied", case_id=case.id,
                         basis=message.basis, transferred_revision=case.transferred_revision)
        else:
            log.warning("a staff transfer from dispatch is not applied: transfers are escalation's actions",
                        case_id=case.id, actor=message.actor)
            outcome = Outcome()
        if outcome:
            uow.store.save(case, outcome, now)
            publish(uow, case, outcome, cause=message)
        elif message.owners != case.owners:  # dispatch takes back the owners the case has
            revision = uow.store.save(case, outcome, now)
            uow.add(events.CaseTransferred(case_id=case.id, owners=case.owners, level=None, reason="owners kept",
                                           actor=SYSTEM, revision=revision), cause=message)
        uow.commit()


def keep_areas(message: events.AreasPublished, uow: UnitOfWork) -> None:
    """``areas.published`` → escalation's own copy of the hierarchy (to find a transfer's owners)."""
    with uow:
        uow.store.replace_areas(message.version, message.areas)
        uow.commit()


def escalate_due(limit: int, uow: UnitOfWork, *, clock: Clock) -> int:
    """Fire every deadline that has passed, for at most ``limit`` cases in one unit of work; returns how
    many cases were due. Cases are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
    schedulers can run; each fires under the timer token it read, so a stale tick does nothing."""
    now = clock.now()
    with uow:
        due = uow.store.claim_due(now, limit)
        changed = [(case, outcome) for case in due if (outcome := timers.escalate_due(case, now, case.timer_token))]
        uow.store.save_all(changed, now)
        for case, outcome in changed:
            publish(uow, case, outcome)
            for step in outcome.steps:
                if step.scheduled_at is not None:
                    LAG.observe(clock.to_real_seconds((step.at - step.scheduled_at).total_seconds()))
        uow.commit()
    return len(due)


def next_due(uow: UnitOfWork) -> datetime | None:
    """When the scheduler next has something to do (service time, UTC), or ``None``."""
    with uow:
        return uow.store.next_due()


@dataclass(frozen=True)
class ClosureStats:
    """``GET /escalation/v1/stats/closure-times``: cases opened (``by="opened"``) or closed
    (``by="closed"``) on local dates ``[day_from, day_to)``."""
    identity: Identity
    group_by: str
    period: str
    day_from: date
    day_to: date
    rank_by: str | None = None
    descending: bool = True
    by: str = "opened"


def closure_stats(query: ClosureStats, uow: UnitOfWork, *, time_zone: str) -> dict:
    """The statistics rows (``store.closure_stats``), ranked by ``rank_by`` when given; the answer of
    the endpoint: ``{"group_by", "period", "by", "from", "to", "time_zone", "rows"}``. A department's
    rows count its assignments by the day they were made (``by="opened"``) or closed by its feedback
    (``by="closed"``)."""
    if query.group_by == "department":
        rows = _department_stats(query, uow, time_zone)
    else:
        with uow:
            rows = uow.store.closure_stats(query.identity, query.group_by, query.period, query.day_from,
                                           query.day_to, by=query.by)
            uow.commit()  # the rollups the read brought up to date
    if query.rank_by:
        rows = statistics.rank(rows, query.rank_by, query.descending)
    return {"group_by": query.group_by, "period": query.period, "by": query.by, "from": query.day_from.isoformat(),
            "to": query.day_to.isoformat(), "time_zone": time_zone, "rows": rows}


def _department_stats(query: ClosureStats, uow: UnitOfWork, time_zone: str) -> list[dict]:
    """``group_by=department``: the assignments made (``by="opened"``) or fed back on, done or declined
    (``by="closed"``), on the local dates ``[day_from, day_to)``, by department and the period of that day
    (``statistics.department_rows``)."""
    zone = ZoneInfo(time_zone)
    start = datetime.combine(query.day_from, time(), zone).astimezone(UTC)
    end = datetime.combine(query.day_to, time(), zone).astimezone(UTC)
    starts = {"day": lambda d: d, "week": measures.week_start, "month": measures.month_start}[query.period]
    with uow:
        found = uow.store.department_assignments(query.identity, start, end, by=query.by)
    return statistics.department_rows(found, lambda at: starts(at.astimezone(zone).date()), by=query.by)


def refresh_rollups(rebuild: bool, uow: UnitOfWork, *, clock: Clock) -> int:
    """Bring the statistics' rollups up to date (``services.escalation.rollups``); ``rebuild``: recompute
    every one. Returns how many (day, sub-center) marks were taken."""
    with uow:
        if rebuild:
            uow.store.rollups.mark_all(clock.now())
        done = uow.store.rollups.refresh()
        uow.commit()
    return done


def refresh_facts(limit: int, uow: UnitOfWork, *, clock: Clock) -> int:
    """Give the statistics a row for up to ``limit`` cases that have none; returns how many."""
    with uow:
        done = uow.store.refresh_missing_facts(clock.now(), limit)
        uow.commit()
    return done


@dataclass(frozen=True)
class Replay:
    """``POST /escalation/v1/stats/replay`` / ``gridcase policy replay``: ``policy`` is the new policy
    (already validated); ``identity`` None means every case (the command line)."""
    policy: Policy
    day_from: date
    day_to: date
    identity: Identity | None = None


def replay_policy(command: Replay, uow: UnitOfWork, *, clock: Clock, calendars_for) -> dict:
    """What-if: the recorded timelines of the cases opened in ``[day_from, day_to)`` re-run under each
    case's own frozen policy (``current``) and under the new policy's rule for its category × severity
    (``new``), side by side per unit (the case's station, or the sub-center or headquarters without
    one) and category, with a total. Counts: cases; automatic escalations from each level 1–3;
    cases overdue at headquarters; cases closed on time (no deadline missed)."""
    now = clock.now()
    calendars = calendars_for(command.policy)
    with uow:
        found = uow.store.timelines(command.identity, command.day_from, command.day_to)
    groups: dict[tuple, dict] = {}
    total = _replay_group("", "")
    for case, steps, _keys in found:
        category = command.policy.categories.get(case.category) or command.policy.categories["other"]
        new_policy = time_policy(category.rule(case.severity), calendars.for_owners(case.owners))
        until = now if case.status != Status.CLOSED else None
        current = measures.replay(steps, case.policy, case.owners, extensions=case.extensions, until=until)
        new = measures.replay(steps, new_policy, case.owners, extensions=case.extensions, until=until)
        unit = case.owners.at(case.owners.owned_level(Level.STATION)).id
        group = groups.setdefault((unit, case.category), _replay_group(unit, case.category))
        for bucket in (group, total):
            bucket["cases"] += 1
            for side, result in (("current", current), ("new", new)):
                for level, count in result.escalations.items():
                    bucket[side]["escalations"][str(level)] += count
                bucket[side]["overdue"] += int(result.overdue)
                bucket[side]["closed_on_time"] += int(result.on_time)
    return {"from": command.day_from.isoformat(), "to": command.day_to.isoformat(),
            "rows": [groups[k] for k in sorted(groups)], "total": total}


def _replay_group(unit: str, category: str) -> dict:
    def side() -> dict:
        return {"escalations": {"1": 0, "2": 0, "3": 0}, "overdue": 0, "closed_on_time": 0}
    return {"unit": unit, "category": category, "cases": 0, "current": side(), "new": side()}


def publish(uow: UnitOfWork, case: Case, outcome: Outcome, *, cause: events.Message | None = None,
            revision: int | None = None, reporter: str | None = None) -> None:
    """The outcome's events as messages: lifecycle steps as ``CaseChanged``; every change of owners
    also as ``case.transferred`` (a staff transfer with its level; a re-route without one, beside its
    ``case.rerouted``), so that dispatch and intake take the owners escalation decided (escalation's own
    consumer skips them); never ``case.verified`` (intake's). Each carries the case's ``revision`` after
    the save (the store's, once saved; ``revision`` for a case not saved yet) and its place among the
    save's events (``events.revision_key``): the others' copies of the case apply only newer ones. Their
    notifications are written too, in the same transaction (``notify.outbox.enqueue_steps``; ``reporter``:
    who filed a case that opens now, not stored yet)."""
    enqueue_steps(uow, case, outcome, reporter=reporter)
    revision = revision if revision is not None else uow.store.revision(case.id)
    for index, event in enumerate(outcome.events):
        step = event.step
        if event.type == "case.verified":
            continue
        if step.type in (StepType.TRANSFERRED, StepType.REROUTED):
            staff = step.type == StepType.TRANSFERRED
            uow.add(events.CaseTransferred(case_id=case.id, owners=case.owners, level=case.level if staff else None,
                                           reason=note_text(step.note), actor=step.actor, revision=revision,
                                           revision_step=index), cause=cause)
            if staff:
                continue
        uow.add(events.CaseChanged(
            event=event.type, case_id=case.id, status=str(case.status), level=step.level,
            owner=case.owners.owner(step.level), at=step.at, actor=step.actor,
            reason=note_text(step.note), scheduled_at=step.scheduled_at, deadline=case.deadline,
            detail=dict(event.detail),
            scope=case.owners if step.type in (StepType.OPENED, StepType.REROUTED) else None,
            revision=revision, revision_step=index,
            reason_message=message.to_json() if (message := note_message(step.note)) is not None else None),
            cause=cause)
