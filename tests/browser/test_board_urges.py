"""督办 (urging) on the board, in real Chromium: command urges a case from its panel, the case's row carries the
red urge mark, and the station that holds the case answers the urge from its own board."""
from __future__ import annotations

import requests
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, WALL, axe_violations, open_page
from tests.support.system import auth, wait_for_case


def test_command_urges_a_case_from_the_board_and_the_owner_answers_it(browser, site, place):
    worker = site.token("grid_worker", area=place["grid"], user="worker-urged")
    case = site.report(worker, place, "board: rubbish piled against the school wall for a week", category="other")
    station = site.token("station", area=place["station"], user="station-urged")
    wait_for_case(site.url, case["id"], worker)
    # the case climbs to the station by hand, so the station holds it
    detail = requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(worker), timeout=10)
    escalated = requests.post(f"{site.url}/escalation/v1/cases/{case['id']}/actions", json={
        "action": "escalate", "reason": "needs a truck"}, headers=auth(worker, **{"If-Match": detail.headers["ETag"]}),
        timeout=10)
    assert escalated.status_code == 200, escalated.text

    command = site.token("command", user="duty-officer-urge")
    context, page, problems = open_page(browser, site, "/board/", command, lang="en", viewport=WALL)
    row = page.locator(f"#case-rows tr:has-text('{case['number']}')")
    open_by_number(page, case["number"])
    page.locator("button[data-action=urge]").click()
    form = page.locator("form[data-form=urge]")
    form.locator("textarea[name=note]").fill("Residents have called three times: clear it today")
    form.locator("select[name=respond_within]").select_option("2 working_hours")
    form.locator("button[type=submit]").click()
    expect(page.locator("#panel-message")).to_contain_text("Done")
    expect(row.locator(".urge")).to_contain_text("Urged")  # the opened case's row is the one in view
    expect(page.locator("#panel-body .urges")).to_contain_text("Residents have called three times")
    page.screenshot(path=SCREENSHOTS / "board-wall-en-urged.png")
    assert not axe_violations(page)
    assert not problems
    context.close()

    context, page, problems = open_page(browser, site, "/board/", station, lang="zh", viewport=WALL)
    row = page.locator(f"#case-rows tr:has-text('{case['number']}')")
    open_by_number(page, case["number"])
    expect(row.locator(".urge")).to_contain_text("督办")
    page.locator("button[data-action=respond_urge]").click()
    form = page.locator("form[data-form=respond_urge]")
    form.locator("textarea[name=note]").fill("清运车下午两点到场")
    form.locator("button[type=submit]").click()
    expect(page.locator("#panel-body .urges")).to_contain_text("清运车下午两点到场")
    expect(row.locator(".urge")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "board-wall-zh-urge-answered.png")
    assert not problems
    context.close()


def open_by_number(page, number: str) -> None:
    """Open a case by its number through the board's search box, wherever it sits in a long (virtualised)
    list; the list scrolls to its row."""
    page.fill("#q", number)
    page.locator("#search button[type=submit]").click()
    page.wait_for_selector("#panel-body dl.facts")
