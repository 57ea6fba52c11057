"""The command-center board: live cases, recovery after a restart, and two staff acting on one case."""
from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.browser.conftest import WALL, open_page


def test_a_new_report_appears_on_the_board_within_two_seconds_and_after_a_server_restart(browser, site, place):
    station = site.token("station", area=place["station"], user="board-watcher")
    worker = site.token("grid_worker", area=place["grid"], user="worker-live")
    context, page, problems = open_page(browser, site, "/board/", station, viewport=WALL)
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "live")

    submitted = time.monotonic()
    first = site.report(worker, place, "board: a lamp is out at gate 3")
    expect(page.locator(f"#case-rows tr:has-text('{first['number']}')")).to_be_visible(timeout=5000)
    took = time.monotonic() - submitted
    print(f"a new case reached the board in {took:.2f} s")
    assert took < 2.0, f"the new case took {took:.2f} s to reach the board"

    site.stop()
    expect(live).to_have_attribute("data-state", "reconnecting", timeout=10000)
    site.start()
    # filed before the board is back: the board gets it by resuming its feed with Last-Event-ID
    second = site.report(worker, place, "board: filed while the board was reconnecting")
    expect(live).to_have_attribute("data-state", "live", timeout=20000)
    expect(page.locator(f"#case-rows tr:has-text('{second['number']}')")).to_be_visible(timeout=5000)
    expect(page.locator(f"#case-rows tr:has-text('{first['number']}')")).to_be_visible()
    assert not problems
    context.close()


def test_two_staff_act_on_one_case_and_the_second_is_told_someone_else_acted_first(browser, site, place):
    worker = site.token("grid_worker", area=place["grid"], user="worker-conflict")
    # a safety hazard starts at the sub-center (shared/policy.toml): two of its staff watch it
    case = site.report(worker, place, "board: gas smell behind the market", category="safety_hazard")
    pages = []
    for user in ("subcenter-alice", "subcenter-bob"):
        token_ = site.token("subcenter", area=place["subcenter"], user=user)
        context, page, problems = open_page(browser, site, "/board/", token_, lang="en")
        page.locator(f"#case-rows a:has-text('{case['number']}')").click()
        expect(page.locator("button[data-action=acknowledge]")).to_be_visible()
        pages.append((context, page, problems))
    (first_context, first, _), (second_context, second, problems) = pages

    first.locator("button[data-action=acknowledge]").click()
    first.locator("form[data-form=acknowledge] button[type=submit]").click()
    expect(first.locator("#panel-message")).to_contain_text("Done")

    expect(second.locator("#panel-changed")).to_be_visible(timeout=5000)  # the live feed tells the other one
    second.locator("button[data-action=acknowledge]").click()
    second.locator("form[data-form=acknowledge] button[type=submit]").click()
    expect(second.locator("#panel-message")).to_contain_text("Someone else acted on this case first")
    # reloaded: the case is now acknowledged, and acknowledging is no longer offered
    expect(second.locator("#panel-body")).to_contain_text("Acknowledged")
    expect(second.locator("button[data-action=acknowledge]")).to_have_count(0)
    assert not problems
    first_context.close()
    second_context.close()
