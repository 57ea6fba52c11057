from datetime import UTC, datetime, timedelta

import pytest

from services.escalation.domain.cases import CLOSED, Case

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOURS = {1: 4.0, 2: 8.0, 3: 24.0, 4: 48.0}
AREAS = {"grid": {"id": "G1", "name": "网格 1"}, "station": {"id": "S1", "name": "工作站 1"},
         "subcenter": {"id": "C1", "name": "分中心 1"}, "hq": {"id": "HQ", "name": "指挥部"}}


def open_case(**overrides):
    args = {"id": "c1", "number": "n1", "category": "street_light", "severity": "normal", "areas": dict(AREAS),
            "start_level": "grid", "hours": HOURS, "now": NOW}
    return Case.open(**{**args, **overrides})


def test_a_case_opens_at_the_grid_with_the_grid_deadline():
    case = open_case()
    assert case.level == 1 and case.owner.area_id == "G1"
    assert case.deadline == NOW + timedelta(hours=4)
    assert [s.action for s in case.steps] == ["opened"]


def test_a_case_in_no_grid_opens_at_the_station():
    case = open_case(areas={**AREAS, "grid": None}, triage=True)
    assert case.level == 2 and case.owner.area_id == "S1"
    assert "triage" in case.steps[0].note


def test_a_case_is_not_due_a_moment_before_its_deadline():
    case = open_case()
    assert not case.is_due(NOW + timedelta(hours=4) - timedelta(microseconds=1))
    assert case.is_due(NOW + timedelta(hours=4))


def test_each_escalation_moves_one_level_up_with_that_levels_deadline():
    case = open_case()
    later = NOW + timedelta(hours=4)
    step = case.escalate(later)
    assert (step.from_level, step.to_level) == (1, 2)
    assert case.owner.area_id == "S1"
    assert case.deadline == later + timedelta(hours=8)


def test_a_case_missing_its_deadline_at_headquarters_is_overdue_and_stays_there():
    case = open_case(start_level="hq")
    step = case.escalate(NOW + timedelta(hours=48))
    assert step.action == "overdue" and case.level == 4 and case.overdue and case.deadline is None
    assert not case.is_due(NOW + timedelta(days=30))


def test_a_closed_case_cannot_be_escalated():
    case = open_case()
    case.status = CLOSED
    with pytest.raises(ValueError):
        case.escalate(NOW)
