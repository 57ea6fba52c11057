"""Time and measurement over real HTTP (`gridcase up`): categories with their GB/T 30428 group and
class, report numbers dated in the city's time zone, and the statistics and replay endpoints."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from shared.policy import DEFAULT_FILE
from tests.support.system import a_point_in_grid, auth, embedded_system, token, wait_for_case


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """The demo city with one report filed and opened."""
    data = tmp_path_factory.mktemp("measure")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin)
        worker = token(data, "grid_worker", area=grid, user="wang")
        created = requests.post(f"{base}/intake/v1/reports", headers=auth(worker, **{
            "Idempotency-Key": str(uuid.uuid4())}), json={"category": "street_light", "description": "lamp out",
                                                          "location": {"lon": lon, "lat": lat}}, timeout=10).json()
        wait_for_case(base, created["id"], worker, timeout=10)
        yield base, data, created, worker


def test_categories_name_their_group_and_class(city):
    base, *_ = city
    categories = {c["code"]: c for c in requests.get(f"{base}/intake/v1/categories", timeout=10).json()}
    assert categories["street_light"]["group"] == {"code": "facilities", "zh": "部件", "en": "Facilities"}
    assert categories["illegal_dumping"]["class"]["zh"] == "市容环境"
    assert set(categories["safety_hazard"]["severities"]) == {"normal", "urgent"}


def test_a_report_number_is_dated_in_the_city_s_time_zone(city):
    _, _, created, _ = city
    reported = datetime.fromisoformat(created["reported_at"].replace("Z", "+00:00"))
    assert created["number"].startswith(reported.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d-"))


def stats_params(**extra) -> dict:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return {"group_by": "station", "period": "day", "from": (today - timedelta(days=1)).isoformat(),
            "to": (today + timedelta(days=2)).isoformat(), **extra}


def test_the_statistics_count_the_case_in_json_and_csv(city):
    base, data, *_ = city
    command = token(data, "command")
    answer = requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats_params(),
                          headers=auth(command), timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["time_zone"] == "Asia/Shanghai" and sum(r["opened"] for r in body["rows"]) == 1
    [row] = body["rows"]
    assert row["closure_rate"] == 0.0 and row["on_time_rate"] is None, "no closed case: no denominator"
    answer = requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats_params(format="csv"),
                          headers=auth(command), timeout=10)
    assert answer.headers["Content-Type"].startswith("text/csv")
    [record] = list(csv.DictReader(io.StringIO(answer.text)))
    assert record["opened"] == "1" and "time_to_close_p90" in record and "time_at_level_2_median" in record
    assert date.fromisoformat(record["period_start"])


def test_a_grid_worker_may_not_read_statistics_and_bad_arguments_are_refused(city):
    base, _, _, worker = city
    answer = requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats_params(), headers=auth(worker),
                          timeout=10)
    assert answer.status_code == 403
    _, data, *_ = city
    command = token(data, "command")
    answer = requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats_params(group_by="planet"),
                          headers=auth(command), timeout=10)
    assert answer.status_code == 422


def test_the_replay_compares_a_new_policy_and_names_the_line_of_a_bad_one(city):
    base, data, *_ = city
    command = token(data, "command")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    window = {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=2)).isoformat()}
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    answer = requests.post(f"{base}/escalation/v1/stats/replay", json={"policy": text, **window},
                           headers=auth(command), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"]["cases"] == 1
    bad = text.replace('1 = "4 working_hours"', '1 = "4 fortnights"')
    answer = requests.post(f"{base}/escalation/v1/stats/replay", json={"policy": bad, **window},
                           headers=auth(command), timeout=10)
    line = next(n for n, s in enumerate(bad.splitlines(), start=1) if "fortnights" in s)
    assert answer.status_code == 422 and f"policy:{line}:" in answer.text


def test_statistics_by_closing_period_count_only_closed_cases_and_name_a_bad_cohort(city):
    base, data, *_ = city
    command = token(data, "command")
    closed = requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats_params(by="closed"),
                          headers=auth(command), timeout=10)
    assert closed.status_code == 200, closed.text
    assert closed.json()["by"] == "closed" and closed.json()["rows"] == [], "the one case is still open"
    opened = requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats_params(), headers=auth(command),
                          timeout=10).json()
    assert opened["by"] == "opened" and "calendar_at_level" in opened["rows"][0]
    assert "on_time_rate_final" in opened["rows"][0]
    for params in (stats_params(by="reported"), stats_params(group_by="department", by="closed")):
        refused = requests.get(f"{base}/escalation/v1/stats/closure-times", params=params, headers=auth(command),
                               timeout=10)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "by"
