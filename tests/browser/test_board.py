"""The command-center board: live cases, recovery after a restart, and two staff acting on one case."""
from __future__ import annotations

import subprocess
import time

import pytest
import requests
from playwright.sync_api import expect

from harness.processes import GRIDCASE
from tests.browser.conftest import WALL, act, open_page
from tests.support.system import ROOT, auth, wait_for_case


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


def test_a_case_transferred_out_of_the_station_leaves_its_board_at_once_and_its_open_panel_says_why(
        browser, site, place):
    """A transferred-away case stayed on the old station's board for 30 s and then read "no such case"."""
    station = site.token("station", area=place["station"], user="board-leaving")
    worker = site.token("grid_worker", area=place["grid"], user="worker-leaving")
    elsewhere = next(g for g in (site.grid(i) for i in range(1, 200)) if g["station"] != place["station"])
    context, page, problems = open_page(browser, site, "/board/", station, viewport=WALL)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    case = site.report(worker, place, "board: a bench broken, across the boundary")
    # the station's list is long by now and drawn a window at a time: the number in the search box opens the
    # case and scrolls its row into view, wherever the live feed put it
    wait_for_case(site.url, case["id"], station)
    row = page.locator(f"#case-rows tr:has-text('{case['number']}')")
    page.fill("#q", case["number"])
    page.locator("#search button[type=submit]").click()
    expect(page.locator("#panel-body")).to_contain_text(case["number"])
    expect(row).to_be_visible(timeout=5000)
    listed = int(page.locator("#case-table").get_attribute("aria-rowcount"))

    command = site.token("command", user="board-transferring")
    read = requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(command), timeout=10)
    etag = read.headers["ETag"]
    moved = requests.post(f"{site.url}/escalation/v1/cases/{case['id']}/actions", timeout=10,
                          headers=auth(command, **{"If-Match": etag}),
                          json={"action": "transfer", "to": elsewhere["grid"], "reason": "across the boundary"})
    assert moved.status_code == 200, moved.text

    expect(row).to_have_count(0, timeout=5000)  # the list reloads every 30 s: this is the feed's removal
    expect(page.locator("#case-table")).to_have_attribute("aria-rowcount", str(listed - 1))
    expect(page.locator("#panel-removed")).to_be_visible()
    assert not problems
    context.close()


def public_report(site, place, description: str) -> tuple[str, str]:
    """A report through Open311 (it waits for acceptance, 立案): (its id, its case number)."""
    key = subprocess.run(GRIDCASE + ["apikey", "create", "--name", f"board-{time.monotonic_ns()}",
                                     "--data-dir", str(site.data)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    response = requests.post(f"{site.url}/open311/v2/requests.json", timeout=10, data={
        "api_key": key, "service_code": "street_light", "lat": place["lat"], "long": place["lon"],
        "description": description})
    assert response.status_code == 201, response.text
    request_id = response.json()[0]["service_request_id"]
    return request_id, wait_for_case(site.url, request_id, site.token("admin"))[0]["number"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_case_in_a_final_status_shows_that_status_and_never_on_time_in_its_panel(browser, site, place, lang):
    """A refused or voided case keeps the deadline it had when it ended, but its clock has stopped: its
    panel's badge names its final status, never "on time" (按时)."""
    command = site.token("command", user=f"command-ends-{lang}")
    refused, refused_number = public_report(site, place, f"final: 报亭旁路灯 ({lang})")
    act(site, refused, command, "refuse", reason="not_city_matter")
    voided = site.report(site.token("grid_worker", area=place["grid"], user=f"worker-ends-{lang}"), place,
                         f"final: entered twice ({lang})")
    act(site, voided["id"], command, "void", reason="entered twice")
    words = {"zh": {"refused": "不予立案", "voided": "已作废", "system": "系统"},
             "en": {"refused": "Refused", "voided": "Voided", "system": "system"}}[lang]
    on_time = "按时" if lang == "zh" else "On time"

    context, page, problems = open_page(browser, site, "/board/", command, lang=lang)
    for number, status in ((refused_number, "refused"), (voided["number"], "voided")):
        page.fill("#q", number)
        page.locator("#search button[type=submit]").click()
        title = page.locator("#panel-body .case-title")
        expect(title).to_contain_text(number)
        badge = title.locator(".state")
        expect(badge).to_have_text(words[status])
        expect(badge).to_have_attribute("data-status", status)
        expect(title.locator(".state.on-time")).to_have_count(0)
        expect(title).not_to_contain_text(on_time)
        # the system's own steps (the case opened) name their actor in the reader's language
        steps = page.locator("#panel-body .when")
        expect(steps.filter(has_text=f" · {words['system']} · ")).not_to_have_count(0)
        if lang == "zh":
            expect(steps.filter(has_text=" · system · ")).to_have_count(0)
    assert not problems
    context.close()
