"""督办 (urging) over real HTTP, embedded: command urges a case, the owner is shown the urge and answers it;
an urge left unanswered past its time is flagged; who may not urge is refused; the statistics and their
CSV count urges."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import requests

from shared.clock import isoformat
from tests.e2e.test_departments import City

SCALE = 600.0  # ten minutes of service time per real second


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from tests.support.system import embedded_system, token

    data = tmp_path_factory.mktemp("urges")
    env = {"GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_CLOCK_ANCHOR": isoformat(datetime.now(UTC))}
    with embedded_system(data, env=env) as base:
        yield City({s: base for s in ("intake", "dispatch", "escalation")},
                   lambda role, **claims: token(data, role, env=env, **claims))


def opened(city: City, key: str) -> str:
    from tests.support.system import wait_for_case

    case_id = city.report(key, category="other")  # no department leads "other": the owner holds it
    wait_for_case(city.urls["escalation"], case_id, city.worker, timeout=15)
    return case_id


def test_command_urges_the_owner_who_answers_and_the_statistics_count_it(city):
    case_id = opened(city, "urge-1")
    city.act(case_id, city.worker, "urge", expect=403, note="a grid worker does not urge")
    city.act(case_id, city.command, "urge", expect=422, note="x", respond_within="soon")
    case = city.act(case_id, city.command, "urge", note="residents keep calling", respond_within="2 working_hours")
    assert case["urge_open"] and case["urges"][0]["urged"] == city.grid
    owner_view = city.case(case_id, city.worker).json()
    assert "respond_urge" in owner_view["actions"] and owner_view["timeline"][-1]["type"] == "urged"
    case = city.act(case_id, city.worker, "respond_urge", note="crew on site this afternoon")
    assert not case["urge_open"] and case["urges"][0]["answer"] == "crew on site this afternoon"
    city.act(case_id, city.worker, "respond_urge", expect=409, note="again")

    today = datetime.now(UTC).date()
    params = {"group_by": "category", "period": "month", "from": str(today - timedelta(days=2)),
              "to": str(today + timedelta(days=2))}
    url = f"{city.urls['escalation']}/escalation/v1/stats/closure-times"
    rows = requests.get(url, params=params, headers={"Authorization": f"Bearer {city.supervisor}"}, timeout=10)
    street = next(r for r in rows.json()["rows"] if r["category"] == "other")
    assert street["urged"] >= 1 and street["time_to_respond"]["median"] is not None
    exported = requests.get(url, params={**params, "format": "csv", "lang": "en"},
                            headers={"Authorization": f"Bearer {city.supervisor}"}, timeout=10)
    header = next(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert {"urged", "urges answered late", "time to answer an urge, median (hours)"} <= set(header)


def test_an_urge_left_unanswered_is_flagged_late_without_moving_the_case(city):
    case_id = opened(city, "urge-2")
    city.act(case_id, city.command, "urge", note="answer within the hour", respond_within="1 hours")
    case = city.until(case_id, city.command, lambda c: c["timeline"][-1]["type"] == "urge_overdue",
                      "the urge's hour passes (6 s)", timeout=40)
    assert case["urges"][0]["overdue"] and case["urge_open"] and case["level"] == 1
