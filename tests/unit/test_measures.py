"""The facts of one case's timeline that the monthly review (考核) counts: on time never late at any level,
and on time against the final deadline; calendar beside working time at each level; the closing date."""
from datetime import date

from services.escalation.domain.actions import perform
from services.escalation.domain.cases import open_case
from services.escalation.domain.measures import measure
from services.escalation.domain.timers import escalate_due
from tests.support.cases import COMMAND, GRID_WORKER, HOUR, NOW, OWNERS, POLICY, STATION


def run(start_level, script):
    """Open a case at ``NOW`` and run ``script`` (a list of (hours after NOW, action, actor, arguments) or
    (hours, "tick")), ticking the scheduler before each; → the facts at the end."""
    case, outcome = open_case(id="c", number="n", category="street_light", severity="normal", owners=OWNERS,
                              start_level=start_level, policy=POLICY, now=NOW)
    steps = list(outcome.steps)
    for hours, action, *rest in script:
        at = NOW + hours * HOUR
        steps += escalate_due(case, at, case.timer_token).steps
        if action != "tick":
            actor, arguments = rest
            steps += perform(case, action, actor, at, **arguments).steps
    return measure(steps, case.policy, case.owners, case.extensions, NOW + 100 * HOUR,
                   closed_now=case.status == "closed")


def test_a_case_that_climbed_a_level_and_was_fixed_in_time_there_is_late_at_a_level_but_on_time_finally():
    facts = run(1, [(5, "resolve", STATION, {"note": "fixed"}), (6, "verify", GRID_WORKER, {"passed": True})])
    assert facts.overdue and not facts.on_time and not facts.on_time_with_extensions
    assert facts.on_time_final
    # level 1 from 09:00 to the missed deadline 13:00: 3 working hours (noon to 13:00 is lunch), 4 calendar
    assert facts.time_at_level == {1: 3 * 3600, 2: 3600} and facts.calendar_at_level == {1: 4 * 3600, 2: 3600}
    assert facts.closed_day == date(2026, 1, 5)


def test_a_case_past_headquarters_deadline_when_resolved_is_late_against_the_final_deadline_too():
    facts = run(4, [(49, "tick"), (50, "resolve", COMMAND, {"note": "fixed at last"}),
                    (51, "verify", GRID_WORKER, {"passed": True})])
    assert facts.overdue and not facts.on_time_final and facts.closed


def test_an_open_case_is_on_time_by_no_measure_and_has_no_closing_date():
    facts = run(1, [(1, "acknowledge", GRID_WORKER, {})])
    assert not (facts.on_time or facts.on_time_with_extensions or facts.on_time_final)
    assert facts.closed_day is None


def test_rework_counts_for_a_closed_case_only_so_the_rework_rate_stays_a_share_of_the_closed():
    """返工率 = closed cases with a failed verification ÷ closed: an open case back in rework is not counted yet."""
    fixed_badly = [(1, "resolve", GRID_WORKER, {"note": "fixed"}),
                   (2, "verify", STATION, {"passed": False, "note": "still dark"})]
    assert not run(1, fixed_badly).reworked
    facts = run(1, [*fixed_badly, (3, "resolve", GRID_WORKER, {"note": "fixed again"}),
                    (4, "verify", STATION, {"passed": True})])
    assert facts.closed and facts.reworked
