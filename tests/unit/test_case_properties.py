"""Property tests of the closed loop: no sequence of actions, ticks, re-routes and passing time reaches
an impossible state (hypothesis drives a case with every actor, argument and stale tick it can find)."""
from copy import deepcopy
from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.escalation.domain.acceptance import Person, Severity
from services.escalation.domain.actions import ACTIONS, perform
from services.escalation.domain.calendar import WorkingCalendar
from services.escalation.domain.cases import AWAITING_VERIFICATION, ENDED, WORKING
from services.escalation.domain.deadlines import Limit, deadline
from services.escalation.domain.errors import Refused
from services.escalation.domain.permissions import Actor, verifying_level
from services.escalation.domain.timers import escalate_due, rerouted
from shared.departments import Department
from shared.vocabulary import Level, Status
from tests.support.cases import NOW, OTHER_OWNERS, OWNER, OWNERS, POLICY, closed_case, new_case

OWNER_CHOICES = [OWNERS, OTHER_OWNERS, replace(OWNERS, grid=None), replace(OWNERS, station=None)]
DEPARTMENTS = [Department("water", "自来水公司", "Water", "HQ"), Department("traffic", "交警", "Traffic police", "HQ")]
DEPARTMENT_ACTORS = [Actor("department", f"{d.id}-desk", None, d.id) for d in DEPARTMENTS]
ACTORS = [*OWNER.values(), Actor("grid_worker", "liu", "G9"), Actor("station", "zhou", "S9"),
          Actor("grid_worker", "ma", "G2"), Actor("supervisor", "sun"), Actor("admin", "root"), *DEPARTMENT_ACTORS]
TEXT = st.sampled_from(["why not", "现场已处理", "why not", "现场已处理", "", "  "])  # mostly given
ARGUMENTS = {
    "acknowledge": st.fixed_dictionaries({}, optional={"note": TEXT}),
    "resolve": st.fixed_dictionaries({"note": TEXT}),
    "escalate": st.fixed_dictionaries({"reason": TEXT}),
    "return": st.fixed_dictionaries({"level": st.integers(0, 5), "reason": TEXT}),
    "transfer": st.fixed_dictionaries({"owners": st.sampled_from(OWNER_CHOICES), "level": st.integers(1, 4),
                                       "reason": TEXT}),
    "request_extension": st.fixed_dictionaries({"amount": st.sampled_from([Limit(1), Limit(6), Limit(30),
                                                                          Limit(60), Limit(0)]), "reason": TEXT}),
    "approve_extension": st.fixed_dictionaries({}, optional={"note": TEXT}),
    "refuse_extension": st.fixed_dictionaries({"reason": TEXT}),
    "suspend": st.fixed_dictionaries({"reason": TEXT}),
    "approve_suspension": st.fixed_dictionaries({}, optional={"note": TEXT}),
    "refuse_suspension": st.fixed_dictionaries({"reason": TEXT}),
    "resume": st.just({}),
    "verify": st.fixed_dictionaries({"passed": st.booleans(), "note": TEXT}),
    "reopen": st.fixed_dictionaries({"reason": TEXT}),
    "assign_department": st.fixed_dictionaries({"department": st.sampled_from(DEPARTMENTS),
                                                "role": st.sampled_from(["lead", "co", "lead", "boss"])},
                                               optional={"note": TEXT}),
    "feedback": st.fixed_dictionaries({"outcome": st.sampled_from(["done", "declined", "done", "maybe"]),
                                       "note": TEXT, "reason": TEXT}),
    "accept": st.fixed_dictionaries({}, optional={"note": TEXT}),
    "refuse": st.fixed_dictionaries({"reason": st.sampled_from(["not_city_matter", "other", "duplicate", "bored"])},
                                    optional={"note": TEXT}),
    "void": st.fixed_dictionaries({"reason": TEXT}),
    # SELF: the case itself; another open case, a closed one, or nothing the caller sees
    "merge": st.fixed_dictionaries({"into": st.sampled_from(["SELF", "OPEN", "OPEN", "CLOSED", None])},
                                   optional={"note": TEXT}),
    "set_severity": st.fixed_dictionaries({"severity": st.sampled_from([
        Severity("urgent", replace(POLICY, levels=(Limit(1), Limit(2), Limit(4), Limit(8)),
                                   acceptance_limit=Limit(0.5)), Level.GRID),
        Severity("normal", POLICY, Level.STATION), None])}),
    "assign": st.fixed_dictionaries({"assignee": st.sampled_from([
        None, Person("li", frozenset({"S1"})), Person("zhao", frozenset({"C1"})), Person("chen", frozenset({"HQ"})),
        Person("nobody", frozenset()), Person("wang", frozenset({"G1"}))])}),
    "urge": st.fixed_dictionaries({"note": TEXT}, optional={"respond_within": st.sampled_from(
        ["2 hours", "1 working_days", "0 hours", "soon", "1e300 hours"])}),
    "respond_urge": st.fixed_dictionaries({"note": TEXT}),
}
assert set(ARGUMENTS) == set(ACTIONS)


#: Calendar hours; the same with warnings at 50 % and 80 %; working hours and days in Shanghai (调休).
POLICIES = [POLICY, replace(POLICY, warnings=(0.5, 0.8), suspend_without_approval=(3, 4)),
            replace(POLICY, warnings=(0.5, 0.8), levels=(Limit(4, "working_hours"), Limit(8, "working_hours"),
                                                          Limit(3, "working_days"), Limit(5, "working_days")),
                    max_extension_total=Limit(16, "working_hours"),
                    calendar=WorkingCalendar("Asia/Shanghai", region="CN"))]


class ClosedLoop(RuleBasedStateMachine):
    @initialize(start=st.integers(1, 4), owners=st.sampled_from(OWNER_CHOICES), policy=st.sampled_from(POLICIES),
                pending=st.booleans())
    def open(self, start, owners, policy, pending):
        self.case = new_case(start_level=start, owners=owners, policy=policy, pending=pending)
        self.now = NOW
        self.steps = []
        self.verified_since_reopen = False
        self.was_pending = pending
        self.ended_as = None  # refused, voided or merged: final

    def _apply(self, outcome, before, *, action=None):
        case = self.case
        if case.deadline != before.deadline:
            assert case.timer_token > before.timer_token, "a deadline change must retire old ticks"
            if action not in (None, "approve_extension", "set_severity") and case.deadline is not None:
                assert case.deadline >= self.now, "an action never sets a deadline in the past"
        for step in outcome.steps:
            assert step.at == self.now and Level.GRID <= step.level <= Level.HQ
            self.steps.append(step)
        for event in outcome.events:
            if event.type == "case.verified":
                self.verified_since_reopen = bool(event.detail["passed"])
            if event.type == "case.reopened":
                self.verified_since_reopen = False

    @rule(hours=st.floats(0, 60))
    def time_passes(self, hours):
        self.now += timedelta(hours=hours)

    @rule(stale=st.booleans())
    def tick(self, stale):
        before = deepcopy(self.case)
        outcome = escalate_due(self.case, self.now, self.case.timer_token - stale)
        if stale or before.status in (Status.SUSPENDED, Status.CLOSED):
            assert not outcome and self.case == before, "a stale tick or a held case does nothing"
        for step in outcome.steps:
            assert step.scheduled_at is not None and step.scheduled_at <= step.at, "never early"
        climbed = [step for step in outcome.steps if step.type == "escalated"]
        if climbed:
            assert self.case.deadline > climbed[-1].scheduled_at, "the next deadline is dated from the missed one"
        if not stale:
            assert not self.case.is_due(self.now), "one tick fires everything that is due"
        self._apply(outcome, before)

    @rule(owners=st.sampled_from([*OWNER_CHOICES, *[None] * 8]))
    def reroute(self, owners):
        """A new area version; mostly (None) one that leaves this case's owners as they are."""
        before = deepcopy(self.case)
        outcome = rerouted(self.case, owners or self.case.owners, self.now)
        if owners is None:
            assert not outcome
        assert self.case.deadline == before.deadline and self.case.level >= before.level
        self._apply(outcome, before)

    @rule(action=st.sampled_from(sorted(ACTIONS)), actor=st.sampled_from(ACTORS), data=st.data())
    def act(self, action, actor, data):
        arguments = data.draw(ARGUMENTS[action])
        if action == "merge":
            into = arguments["into"]
            arguments["into"] = (self.case if into == "SELF" else closed_case() if into == "CLOSED"
                                 else new_case(id="c2", number="20260105-000002") if into == "OPEN" else None)
        before = deepcopy(self.case)
        try:
            outcome = perform(self.case, action, actor, self.now, **arguments)
        except Refused:
            assert self.case == before, "a refused action changes nothing"
            return
        assert outcome, "an action that is taken is recorded"
        if before.status in ENDED - {Status.CLOSED}:
            raise AssertionError(f"{action} changed a {before.status} case")
        if action == "suspend" and self.case.status == Status.SUSPENDED:
            assert int(before.level) in before.policy.suspend_without_approval, \
                "an owner stops their own clock only where the policy lets them (挂账 needs the level above)"
        self._apply(outcome, before, action=action)
        if self.case.status in ENDED - {Status.CLOSED}:
            self.ended_as = self.case.status

    @rule(action=st.sampled_from(sorted(ACTIONS)), data=st.data())
    def the_right_person_acts(self, action, data):
        """The same, by whoever the rules name for ``action``, so that the loop really turns."""
        self.act(action, _rightful(self.case, action), data)

    @invariant()
    def the_case_is_in_a_possible_state(self):
        case = self.case
        assert Level.GRID <= case.level <= Level.HQ and case.owners.at(case.level) is not None
        assert case.status in WORKING | AWAITING_VERIFICATION | ENDED | {
            Status.SUSPENDED, Status.DISPATCHED, Status.PENDING_ACCEPTANCE}
        assert case.status != Status.RESOLVED
        assert (case.deadline is None) == (case.status in ENDED | {Status.SUSPENDED})
        assert (case.status == Status.SUSPENDED) == (case.time_left is not None) == (case.held_status is not None)
        assert case.held_status in WORKING | {None}
        assert not case.overdue or case.status == Status.PENDING_ACCEPTANCE or (
            case.level == Level.HQ and case.status in WORKING | {Status.SUSPENDED, Status.DISPATCHED})
        assert not case.verification_overdue or case.status in AWAITING_VERIFICATION
        assert case.pending_extension is None or case.status in WORKING | {Status.SUSPENDED}
        assert case.pending_suspension is None or case.status in WORKING, "a request waits on a working case"

    @invariant()
    def a_dispatched_case_has_one_active_lead_department(self):
        case = self.case
        leads = [a for a in case.assignments if a.role == "lead" and a.active]
        assert len(leads) <= 1
        assert (case.status == Status.DISPATCHED) == bool(leads)
        if leads:
            assert case.deadline == leads[0].deadline, "a dispatched case shows its lead's deadline"
        live = [a.department for a in case.assignments if a.status != "declined"]
        assert len(live) == len(set(live)), "a department is on a case once (until it declines)"

    @invariant()
    def a_case_awaiting_acceptance_has_no_ladder_yet(self):
        """立案: until accepted, a report has its acceptance deadline only (from when it came in, under its
        severity's rule): no warnings, no departments, no handler; and it never waits again once it left."""
        if not hasattr(self, "steps"):
            return
        case = self.case
        if case.status == Status.PENDING_ACCEPTANCE:
            assert self.was_pending and not any(str(s.type) == "accepted" for s in self.steps)
            assert case.deadline == deadline(case.opened_at, case.policy.acceptance_limit, case.policy.calendar)
            assert case.warnings == () and case.assignments == () and case.handler is None
            assert case.resolved_level is None and case.pending_extension is None
        elif self.was_pending and case.status not in ENDED - {Status.CLOSED}:
            assert [str(s.type) for s in self.steps].count("accepted") == 1, "a case left waiting only by acceptance"
        if not self.was_pending:
            assert not any(str(s.type) in ("accepted", "refused", "severity_set") for s in self.steps)

    @invariant()
    def refused_voided_and_merged_are_final(self):
        case = self.case
        if getattr(self, "ended_as", None) is not None:
            assert case.status == self.ended_as and case.deadline is None and case.handler is None
        if case.status == Status.MERGED:
            assert case.merged_into not in (None, case.id)

    @invariant()
    def a_handler_belongs_to_the_unit_holding_the_case(self):
        case = self.case
        if case.handler is not None:
            assert case.assignee_unit == case.owner.area_id and case.status not in ENDED | {Status.PENDING_ACCEPTANCE}

    @invariant()
    def urges_are_answered_or_waiting(self):
        for u in self.case.urges:
            assert u.due >= u.at and (u.answered_at is None or u.answered_at >= u.at)
        waiting = [u for u in self.case.urges if u.answered_at is None and not u.overdue]
        if waiting and self.case.status not in ENDED | {Status.SUSPENDED}:
            due = self.case.due_at
            assert due is not None and all(u.due >= due for u in waiting), "the scheduler wakes for every open urge"

    @invariant()
    def a_closed_case_was_verified_since_it_last_opened(self):
        if self.case.status == Status.CLOSED:
            assert self.verified_since_reopen
            assert [str(s.type) for s in self.steps[-2:]] == ["verified", "closed"]

    @invariant()
    def extensions_stay_within_their_caps(self):
        policy = self.case.policy
        assert len(self.case.extensions) <= policy.max_extensions
        assert sum(limit.seconds for limit in self.case.extensions) <= policy.max_extension_total.seconds

    @invariant()
    def reworks_are_counted(self):
        if hasattr(self, "steps"):
            assert self.case.reworks == sum(str(s.type) == "reworked" for s in self.steps)


def _rightful(case, action):
    """The actor the permission rules expect for ``action`` on ``case`` as it stands."""
    roles = {1: "grid_worker", 2: "station", 3: "subcenter", 4: "command"}
    if action == "reopen":
        return Actor("supervisor", "sun")
    if action == "void":
        return Actor("command", "chen", "HQ")
    if action in ("accept", "refuse", "merge", "set_severity"):
        level = case.owners.owned_level(Level.STATION)
        return Actor(roles[level], "acceptor", case.owners.at(level).id)
    if action in ("assign_department", "urge"):
        return Actor("command", "chen", "HQ")
    if action == "respond_urge" and case.status == Status.DISPATCHED:
        lead = next(a for a in case.assignments if a.role == "lead" and a.active)
        return next(x for x in DEPARTMENT_ACTORS if x.department == lead.department)
    if action in ("feedback", "acknowledge") and case.assignments and (action == "feedback" or case.level == 4):
        active = [a for a in case.assignments if a.active] or list(case.assignments)
        return next(x for x in DEPARTMENT_ACTORS if x.department == active[0].department)
    level = case.level
    if action in ("approve_extension", "refuse_extension", "approve_suspension", "refuse_suspension"):
        if level == Level.HQ:
            return Actor("supervisor", "sun")
        level = next(up for up in Level if up > level and case.owners.at(up))
    if action == "verify":  # the verifier the rule names, never the person who made the fix
        level = verifying_level(case)
        return Actor(roles[level], "checker", case.owners.at(level).id)
    return Actor(roles[level], "rightful", ref.id if (ref := case.owners.at(level)) else None)


ClosedLoop.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
test_no_sequence_of_actions_reaches_an_impossible_state = ClosedLoop.TestCase
