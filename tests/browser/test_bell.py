"""The bell on the board: a case escalated to the station shows as an unread notification within
seconds, opens in the panel from the bell, and "mark all read" clears the count."""
from __future__ import annotations

import requests
from playwright.sync_api import expect

from tests.browser.conftest import WALL, open_page
from tests.support.system import auth, wait_for_case


def test_an_escalation_rings_the_stations_bell_and_opens_the_case(browser, site, place):
    station = site.token("station", area=place["station"], user="bell-watcher")
    worker = site.token("grid_worker", area=place["grid"], user="worker-bell")
    context, page, problems = open_page(browser, site, "/board/", station, lang="en", viewport=WALL)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.locator("#bell").click()
    page.locator("#bell-read-all").click()
    expect(page.locator("#bell-count")).to_have_text("0", timeout=5000)

    case = site.report(worker, place, "bell: a quarrel over a wall", category="neighbour_dispute")
    wait_for_case(site.url, case["id"], worker)
    read = requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(worker), timeout=10)
    moved = requests.post(f"{site.url}/escalation/v1/cases/{case['id']}/actions", timeout=10,
                          headers=auth(worker, **{"If-Match": read.headers["ETag"]}),
                          json={"action": "escalate", "reason": "beyond the grid"})
    assert moved.status_code == 200, moved.text
    expect(page.locator("#bell-count")).not_to_have_text("0", timeout=5000)
    item = page.locator("#bell-list li.unread", has_text=case["number"]).filter(has_text="New case assigned")
    expect(item.first).to_be_visible(timeout=5000)
    item.first.locator("a").click()
    expect(page.locator("#panel-body")).to_contain_text(case["number"])
    page.locator("#bell-read-all").click()
    expect(page.locator("#bell-count")).to_have_text("0")
    assert not problems
    context.close()
