"""Every change of owner goes through one rule with one permission table (``domain/ownership.py``): who
may escalate, return, transfer, and where to."""
from copy import deepcopy
from dataclasses import replace

import pytest

from services.escalation.domain.actions import perform
from services.escalation.domain.errors import InvalidArgument, NotAllowed
from services.escalation.domain.ownership import WHO, may
from shared.owners import AreaRef, Owners
from shared.vocabulary import Level
from tests.support.cases import COMMAND, GRID_WORKER, HOUR, NOW, OWNERS, STATION, SUBCENTER, new_case

LATER = NOW + HOUR
#: A grid of the same station (S1), a grid of another station in the same sub-center, and a grid in
#: another sub-center.
SAME_STATION = replace(OWNERS, grid=AreaRef("G2", "网格 2"))
OTHER_STATION = replace(OWNERS, grid=AreaRef("G5", "网格 5"), station=AreaRef("S2", "工作站 2"))
OTHER_SUBCENTER = Owners(grid=AreaRef("G9", "网格 9"), station=AreaRef("S9", "工作站 9"),
                         subcenter=AreaRef("C9", "分中心 9"), hq=AreaRef("HQ", "指挥部"))


def escalated_to_the_subcenter():
    case = new_case()
    perform(case, "escalate", GRID_WORKER, LATER, reason="needs the station")
    perform(case, "escalate", STATION, LATER, reason="needs the sub-center")
    assert case.level == Level.SUBCENTER
    return case


def test_a_station_cannot_pull_a_case_escalated_to_its_subcenter_back_down_by_any_change():
    case = escalated_to_the_subcenter()
    before = deepcopy(case)
    for action, arguments in [("transfer", {"owners": OWNERS, "level": 1, "reason": "mine after all"}),
                              ("transfer", {"owners": SAME_STATION, "level": 1, "reason": "mine after all"}),
                              ("return", {"level": 1, "reason": "mine after all"})]:
        with pytest.raises(NotAllowed):
            perform(case, action, STATION, LATER, **arguments)
    assert case == before


def test_a_grid_worker_cannot_move_its_own_case_into_another_subcenter_or_anywhere():
    for owners in (OTHER_SUBCENTER, OTHER_STATION, SAME_STATION):
        case = new_case()
        with pytest.raises(NotAllowed, match="grid worker"):
            perform(case, "transfer", GRID_WORKER, LATER, owners=owners, level=1, reason="not my grid")
        assert case.owners == OWNERS


@pytest.mark.parametrize("actor, owners, allowed", [
    (STATION, SAME_STATION, True),
    (STATION, OTHER_STATION, False),
    (STATION, OTHER_SUBCENTER, False),
    (SUBCENTER, OTHER_STATION, True),
    (SUBCENTER, OTHER_SUBCENTER, False),
    (COMMAND, OTHER_SUBCENTER, True),
])
def test_the_owner_transfers_only_to_a_unit_inside_its_own_area(actor, owners, allowed):
    case = new_case(start_level=int(Level.HQ if actor is COMMAND else {STATION: 2, SUBCENTER: 3}[actor]))
    if allowed:
        perform(case, "transfer", actor, LATER, owners=owners, level=1, reason="belongs there")
        assert case.owners == owners and case.level == Level.GRID and case.deadline == LATER + 4 * HOUR
    else:
        with pytest.raises(NotAllowed, match="inside its own area"):
            perform(case, "transfer", actor, LATER, owners=owners, level=1, reason="belongs there")


def test_command_transfers_a_case_at_any_level_and_the_subcenter_a_case_at_its_own_only():
    perform(new_case(), "transfer", COMMAND, LATER, owners=OTHER_SUBCENTER, level=2, reason="r")
    with pytest.raises(NotAllowed):
        perform(new_case(start_level=2), "transfer", SUBCENTER, LATER, owners=OTHER_STATION, level=2, reason="r")


def test_a_transfer_to_where_the_case_already_is_buys_no_fresh_clock():
    case = new_case(start_level=2)
    deadline = case.deadline
    with pytest.raises(InvalidArgument, match="already"):
        perform(case, "transfer", STATION, LATER, owners=OWNERS, level=2, reason="again")
    assert case.deadline == deadline


def test_a_transfer_goes_to_a_grid_or_a_station_only():
    with pytest.raises(InvalidArgument) as refused:
        perform(new_case(start_level=4), "transfer", COMMAND, LATER, owners=OWNERS, level=3, reason="r")
    assert refused.value.field == "to"


def test_the_table_names_every_change_a_person_may_make_and_grid_workers_transfer_nothing():
    assert set(WHO) == {"escalate", "return", "transfer"}
    case = new_case()
    assert may("escalate", GRID_WORKER, case) is None
    assert may("transfer", GRID_WORKER, case) is not None
    assert may("transfer", COMMAND, case) is None
