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
    answer = requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats_params(format="csv", lang="en"),
                          headers=auth(command), timeout=10)
    assert answer.headers["Content-Type"].startswith("text/csv"), answer.text
    [record] = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert record["opened"] == "1" and record["station id"] == row["area_id"]
    assert "time to close, 90th percentile (hours)" in record and "time at level 2 (station), median (hours)" in record
    assert date.fromisoformat(record["period start (Asia/Shanghai)"]) == date.fromisoformat(row["period_start"])


def test_the_statistics_csv_opens_in_a_spreadsheet_with_the_chinese_names_exactly(city, tmp_path):
    """Excel reads a CSV in the machine's code page unless it starts with a byte-order mark: the file is
    UTF-8 behind one, its column names in the caller's language, each unit's name beside its id."""
    import openpyxl

    base, data, *_ = city
    command = token(data, "command")
    url = f"{base}/escalation/v1/stats/closure-times"
    [row] = requests.get(url, params=stats_params(), headers=auth(command), timeout=10).json()["rows"]
    stations = requests.get(f"{base}/dispatch/v1/areas", params={"level": "station"}, headers=auth(command),
                            timeout=10).json()["features"]
    name = next(f["properties"]["name"] for f in stations if f["properties"]["id"] == row["area_id"])
    assert "工作站" in name  # the demo city's names are Chinese: 第1分中心第1工作站
    for params, headers in (({"lang": "zh"}, {}), ({}, {"Accept-Language": "zh-CN,zh;q=0.9"}), ({}, {})):
        answer = requests.get(url, params=stats_params(format="csv", **params), headers=auth(command, **headers),
                              timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.content.startswith(b"\xef\xbb\xbf") and answer.headers["Content-Language"] == "zh"
        path = tmp_path / "closure-times.csv"
        path.write_bytes(answer.content)
        with path.open(encoding="utf-8-sig", newline="") as f:
            [record] = list(csv.DictReader(f))
        assert record["工作站编号"] == row["area_id"] and record["工作站名称"] == name
        assert record["立案数"] == str(row["opened"]) and record["结案率"] == str(row["closure_rate"])
        assert record["周期开始日期（Asia/Shanghai）"] == row["period_start"]
        for key, label in (("time_to_close", "结案用时中位数（小时）"),
                           ("time_to_acknowledge", "签收用时中位数（小时）")):
            value = row[key]["median"]
            assert record[label] == ("" if value is None else str(round(value / 3600, 6)))
    with path.open(encoding="utf-8-sig", newline="") as f:  # converted as a user would: into a workbook
        book = openpyxl.Workbook()
        for line in csv.reader(f):
            book.active.append(line)
    book.save(tmp_path / "closure-times.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "closure-times.xlsx").active
    header = [c.value for c in sheet[1]]
    values = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert header[:3] == ["工作站编号", "工作站名称", "周期开始日期（Asia/Shanghai）"]
    assert values["工作站名称"] == name
    english = requests.get(url, params=stats_params(format="csv"), timeout=10,
                           headers=auth(command, **{"Accept-Language": "en-GB,en;q=0.9"}))
    assert english.content.decode("utf-8-sig").startswith("station id,station name,period start (Asia/Shanghai)")


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
    by_department = requests.get(f"{base}/escalation/v1/stats/closure-times", timeout=10, headers=auth(command),
                                 params=stats_params(group_by="department", by="closed"))
    assert by_department.status_code == 200 and by_department.json()["by"] == "closed"  # closed by feedback
    for params in (stats_params(by="reported"),):
        refused = requests.get(f"{base}/escalation/v1/stats/closure-times", params=params, headers=auth(command),
                               timeout=10)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "by"
