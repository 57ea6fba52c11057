"""The calendar over real HTTP (`gridcase up`) on New Year's Eve 2026, the service clock anchored there
(``GRIDCASE_CLOCK_ANCHOR``, running twice as fast): no official calendar file covers 2027, so a
one-working-day deadline computed into it is flagged ``calendar_gap`` in the case detail instead of
silently ending on New Year's Day; ``/readyz`` warns that the official files end; and the replay
endpoint answers 422 naming ``policy`` for a policy nested 5,000 deep or with an unbounded limit."""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from shared.clock import parse_time
from shared.policy import DEFAULT_FILE
from tests.support.system import a_point_in_grid, auth, embedded_system, token, wait_for_case

#: 09:00 on Thursday 31 December 2026 in Shanghai.
NEW_YEAR_S_EVE = datetime(2026, 12, 31, 1, 0, tzinfo=UTC)
SCALE = 2.0


def anchored_at(target: datetime) -> str:
    """The ``GRIDCASE_CLOCK_ANCHOR`` that makes a clock running ``SCALE`` times real time read ``target``
    now: service = anchor + (real − anchor) × scale."""
    real = time.time()
    anchor = (SCALE * real - target.timestamp()) / (SCALE - 1)
    return datetime.fromtimestamp(anchor, UTC).isoformat()


@pytest.fixture(scope="module")
def new_year_s_eve(tmp_path_factory):
    data = tmp_path_factory.mktemp("calendar_gap")
    env = {"GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_CLOCK_ANCHOR": anchored_at(NEW_YEAR_S_EVE)}
    with embedded_system(data, env=env) as base:
        yield base, data


def test_a_working_day_deadline_into_a_year_without_an_official_file_is_flagged_calendar_gap(new_year_s_eve):
    base, data = new_year_s_eve
    admin = token(data, "admin")
    grid, lon, lat = a_point_in_grid(base, admin)
    worker = token(data, "grid_worker", area=grid, user="wang")
    created = requests.post(f"{base}/intake/v1/reports", headers=auth(worker, **{"Idempotency-Key": str(uuid.uuid4())}),
                            json={"category": "neighbour_dispute", "description": "noise at night",
                                  "location": {"lon": lon, "lat": lat}}, timeout=10)
    assert created.status_code == 201, created.text
    case, _ = wait_for_case(base, created.json()["id"], worker, timeout=30)
    assert parse_time(case["opened_at"]).date() == NEW_YEAR_S_EVE.date()
    # 1 working day (neighbour_dispute at the grid): the day after the start, to its close. 2027 has no
    # official file and the shipped policy does not opt in to statutory rules: the weekday is taken as
    # it comes (Friday 1 January, 17:30 in Shanghai) and the deadline says so.
    assert case["deadline"] == "2027-01-01T09:30:00.000Z"
    assert case["deadline_basis"] == "calendar_gap" and case["calendar_gap"] is True
    assert case["provisional"] is False


def test_readyz_warns_that_the_official_calendar_files_end(new_year_s_eve):
    base, _ = new_year_s_eve
    ready = requests.get(f"{base}/escalation/readyz", timeout=10)  # escalation's own probe (its root in production)
    assert ready.status_code == 200
    calendar = ready.json()["detail"]["calendar"]
    assert calendar["status"] == "ending" and calendar["official_until"] == "2026-12-31"
    assert calendar["days_left"] == 0 and "2027.toml" in calendar["message"]


@pytest.mark.parametrize("policy", [
    "x = " + "[" * 5000,
    "x = " + "{a = " * 2000,
    DEFAULT_FILE.read_text(encoding="utf-8").replace('1 = "4 working_hours"', "1 = inf"),
    DEFAULT_FILE.read_text(encoding="utf-8").replace('1 = "4 working_hours"', "1 = 1e300"),
    DEFAULT_FILE.read_text(encoding="utf-8").replace('1 = "4 working_hours"', "1 = 1e15"),
    DEFAULT_FILE.read_text(encoding="utf-8").replace('1 = "4 working_hours"', '1 = "1000000000 working_days"'),
])
def test_the_replay_answers_422_naming_the_policy_for_an_unbounded_one(new_year_s_eve, policy):
    base, data = new_year_s_eve
    started = time.monotonic()
    answer = requests.post(f"{base}/escalation/v1/stats/replay", headers=auth(token(data, "command")), timeout=30,
                           json={"policy": policy, "from": "2026-12-01", "to": "2027-01-01"})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["policy"] and time.monotonic() - started < 20
