"""Times read in the city's time zone on every page, whatever the browser's: a board, a phone and a wall
in a browser set to New York show a case's times in the city's zone (as the statistics answer names it),
not thirteen hours off."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import requests
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, WALL, act, open_page
from tests.support.system import auth, wait_for_case

ELSEWHERE = "America/New_York"


def city_zone(site) -> str:
    """The city's zone as the desk reads it (the statistics' ``time_zone``)."""
    answer = requests.get(f"{site.url}/escalation/v1/stats/closure-times", headers=auth(site.token("admin")),
                          params={"group_by": "station", "period": "month", "from": "2026-01-01", "to": "2026-02-01"},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["time_zone"]


def shown(iso: str, zone: str) -> str:
    """How a page shows ``iso`` in English in ``zone``: the month by name (5 Dec 2026, 22:07), never a
    numeric date that a reader could take day for month."""
    at = datetime.fromisoformat(iso.replace('Z', '+00:00')).astimezone(ZoneInfo(zone))
    return f"{at.day} {at:%b %Y, %H:%M}"


def test_a_board_and_a_phone_in_another_time_zone_show_a_cases_times_in_the_citys(browser, site, place):
    zone = city_zone(site)
    assert ZoneInfo(zone).utcoffset(datetime(2026, 1, 1)) != ZoneInfo(ELSEWHERE).utcoffset(datetime(2026, 1, 1))
    reporter = site.token("grid_worker", area=place["grid"], user="worker-times-reporter")
    case = site.report(reporter, place, "times: a lamp is out by the school", category="other")
    station = site.token("station", area=place["station"], user="station-times")
    wait_for_case(site.url, case["id"], station)
    detail = requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(station), timeout=10).json()

    context, page, problems = open_page(browser, site, "/board/", station, lang="en", viewport=WALL,
                                        timezone_id=ELSEWHERE)
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == ELSEWHERE
    # the station's list is long by now and drawn a window at a time: the case is opened by its number
    page.fill("#q", case["number"])
    page.locator("#search button[type=submit]").click()
    panel = page.locator("#panel")
    expect(page.locator("#panel-body")).to_contain_text(case["number"])
    expect(panel).to_contain_text(shown(detail["deadline"], zone))
    expect(panel).to_contain_text(shown(case["reported_at"], zone))
    assert shown(detail["deadline"], ELSEWHERE) not in panel.inner_text()
    assert not problems
    context.close()

    # the phone: another worker of the grid hears the escalation back down (its bell shows when)
    act(site, case["id"], reporter, "escalate", reason="needs the station's van")
    act(site, case["id"], station, "return", level=1, reason="the grid can fix it")
    bell = requests.get(f"{site.url}/escalation/v1/notifications", timeout=10, headers=auth(
        site.token("grid_worker", area=place["grid"], user="worker-times-phone"))).json()
    [told] = [i for i in bell["items"] if i["case_id"] == case["id"] and i["payload"]["step"]["type"] == "returned"]
    token_ = site.token("grid_worker", area=place["grid"], user="worker-times-phone")
    context, page, problems = open_page(browser, site, "/app/", token_, lang="en", viewport=PHONE,
                                        timezone_id=ELSEWHERE)
    page.locator("#bell").click()
    item = page.locator("#bell-list li", has_text=case["number"]).first
    expect(item).to_contain_text(shown(told["at"], zone))
    assert shown(told["at"], ELSEWHERE) not in item.inner_text()
    assert not problems
    context.close()

    # the wall: the escalation in its list at the city's hour, however the wall's answers arrive
    timeline = requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(station),
                            timeout=10).json()["timeline"]
    escalated = next(s["at"] for s in timeline if s["type"] == "escalated")
    # (its statistics, which also name the zone, are held back: the list is drawn before they come)
    context = browser.new_context(viewport=WALL, locale="en-US", timezone_id=ELSEWHERE)
    held = []
    context.route("**/escalation/v1/stats/**", lambda route: held.append(route))
    page = context.new_page()
    page.goto(f"{site.url}/wall/#token={site.token('command', user='wall-times')}")
    row = page.locator("#escalation-list li", has_text=case["number"]).first
    expect(row).to_be_visible(timeout=15000)
    assert held, "the statistics were asked for and are held back"
    expect(row).to_contain_text(shown(escalated, zone)[-5:])
    assert shown(escalated, ELSEWHERE)[-5:] not in row.inner_text()
    context.close()
