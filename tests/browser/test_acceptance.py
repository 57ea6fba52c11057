"""The grid worker's own cases on the phone (360×740), acceptance on the board, finding cases and named
handlers, in real Chromium: a case fixed on the spot with an after-photo and verified by the station from a
shared link, before and after side by side; the search box; the acceptance queue; "mine"."""
from __future__ import annotations

import io
import subprocess

import requests
from PIL import Image
from playwright.sync_api import expect

from harness.processes import GRIDCASE
from tests.browser.conftest import PHONE, SCREENSHOTS, WALL, act, open_page
from tests.support.system import ROOT, auth, wait_for, wait_for_case


def jpeg(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(out, "JPEG")
    return out.getvalue()


def photos_of(site, case_id: str, token_: str) -> list[dict]:
    return requests.get(f"{site.url}/intake/v1/reports/{case_id}/photos", headers=auth(token_), timeout=10).json()


def case_of(site, case_id: str, token_: str) -> dict:
    return requests.get(f"{site.url}/escalation/v1/cases/{case_id}", headers=auth(token_), timeout=10).json()


def shared_link(browser, site, token_: str, number: str, **options):
    """The board opened from a link someone shared (``/board/#case=NUMBER``), signed in on the way."""
    context = browser.new_context(viewport=options.pop("viewport", WALL), locale=options.pop("locale", "zh-CN"))
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(f"{site.url}/board/#token={token_}&case={number}")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    return context, page, problems


def test_a_grid_worker_fixes_a_case_on_the_spot_from_the_phone_with_an_after_photo_and_the_station_verifies_it(
        browser, site, place):
    worker = site.token("grid_worker", area=place["grid"], user="worker-spot")
    station = site.token("station", area=place["station"], user="station-spot")
    case = site.report(worker, place, "spot: 树枝挡住路灯 / a branch hides the lamp", category="other")
    before = requests.post(f"{site.url}/intake/v1/reports/{case['id']}/photos", headers=auth(worker),
                           files={"file": ("before.jpg", jpeg((150, 40, 40)), "image/jpeg")}, timeout=10)
    assert before.status_code == 201 and before.json()["kind"] == "before"
    wait_for_case(site.url, case["id"], worker)

    context, page, problems = open_page(browser, site, "/app/", worker, viewport=PHONE,
                                        permissions=["geolocation"],
                                        geolocation={"latitude": place["lat"], "longitude": place["lon"]})
    page.select_option("#r-category", "manhole_cover")  # the proposed severity starts at the category's own
    expect(page.locator("#severity-field input[value=urgent]")).to_be_checked()
    page.select_option("#r-category", "street_light")
    expect(page.locator("#severity-field input[value=normal]")).to_be_checked()
    task = page.locator(f"#tasks-list li:has-text('{case['number']}')")
    expect(task).to_be_visible()
    task.locator("button[data-action=acknowledge]").click()
    expect(page.locator("#message")).to_contain_text("已签收")
    task = page.locator(f"#tasks-list li:has-text('{case['number']}')")
    expect(task.locator("button[data-action=acknowledge]")).to_have_count(0)
    task.locator("button[data-action=resolve]").click()
    task.locator("form[data-form=resolve] textarea").fill("剪掉了树枝 / cut the branch back")
    task.locator("form[data-form=resolve] input[type=file]").set_input_files(
        files=[{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": jpeg((40, 150, 40))}])
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    task.screenshot(path=SCREENSHOTS / "app-phone-task-zh.png")
    task.locator("form[data-form=resolve] button[type=submit]").click()
    expect(page.locator("#message")).to_contain_text("工作站核查")
    expect(page.locator(f"#tasks-list li:has-text('{case['number']}')")).to_have_count(0)
    resolved = case_of(site, case["id"], worker)
    assert resolved["status"] == "verifying" and resolved["verifier"]["level"] == 2
    assert sorted(p["kind"] for p in photos_of(site, case["id"], worker)) == ["after", "before"]
    expect(page.locator(f"#verify-list li:has-text('{case['number']}')")).to_have_count(0)  # not the worker's check
    assert not problems
    context.close()

    # the station opens the shared link, sees before and after side by side, and checks it on site
    board_context, board, board_problems = shared_link(browser, site, station, case["number"], locale="en-US")
    expect(board.locator("#panel-body .case-title")).to_contain_text(case["number"])
    expect(board.locator("#photos figure[data-kind=before] img")).to_have_count(1)
    expect(board.locator("#photos figure[data-kind=after] img")).to_have_count(1)
    before_box = board.locator("#photos figure[data-kind=before]").bounding_box()
    after_box = board.locator("#photos figure[data-kind=after]").bounding_box()
    assert abs(before_box["y"] - after_box["y"]) < 2 and after_box["x"] > before_box["x"], "side by side"
    assert board.evaluate("location.hash") == f"#case={case['number']}", "the token left the address, the case stayed"
    board.locator("#panel").screenshot(path=SCREENSHOTS / "board-wall-before-after-en.png")
    board.locator("form[data-form=verify] button[value=true]").click()
    expect(board.locator("#verify-done")).to_be_visible()
    wait_for(lambda: case_of(site, case["id"], station)["status"] == "closed", timeout=10, message="closed")
    assert not board_problems
    board_context.close()


def test_a_case_is_found_by_its_number_and_by_words_from_the_board_search_box(browser, site, place):
    worker = site.token("grid_worker", area=place["grid"], user="worker-find")
    station = site.token("station", area=place["station"], user="station-find")
    case = site.report(worker, place, "find: 窨井盖松动 loose manhole cover by the school", category="other")
    wait_for_case(site.url, case["id"], worker)
    act(site, case["id"], worker, "acknowledge")
    context, page, problems = open_page(browser, site, "/board/", station, lang="en")
    page.fill("#q", case["number"])
    page.locator("#search button[type=submit]").click()
    expect(page.locator("#panel-body .case-title")).to_contain_text(case["number"])
    expect(page).to_have_url(f"{site.url}/board/#case={case['number']}")
    page.fill("#q", "MANHOLE school")
    page.locator("#search button[type=submit]").click()
    results = page.locator("#search-results")
    expect(results).to_contain_text(case["number"])
    results.locator(f"a:has-text('{case['number']}')").click()
    expect(page.locator("#panel-body .case-title")).to_contain_text(case["number"])
    page.fill("#q", "20000101-000001")
    page.locator("#search button[type=submit]").click()
    expect(page.locator("#panel-message")).to_contain_text("no such case")
    page.goto(f"{site.url}/board/#case={case['id']}")  # a notification's link names the case's id
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#panel-body .case-title")).to_contain_text(case["number"])
    assert not problems
    context.close()


def test_a_public_report_waits_in_the_acceptance_queue_and_is_accepted_as_urgent_from_the_board(browser, site, place):
    key = subprocess.run(GRIDCASE + ["apikey", "create", "--name", "browser-civic", "--data-dir", str(site.data)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    response = requests.post(f"{site.url}/open311/v2/requests.json", timeout=10, data={
        "api_key": key, "service_code": "street_light", "lat": place["lat"], "long": place["lon"],
        "description": "queue: 广场长椅坏了 / a broken bench on the square"})
    assert response.status_code == 201, response.text
    request_id = response.json()[0]["service_request_id"]
    station = site.token("station", area=place["station"], user="station-accept")
    number = wait_for_case(site.url, request_id, station)[0]["number"]

    context, page, problems = open_page(browser, site, "/board/", station)
    page.select_option("#f-queue", "acceptance")
    row = page.locator(f"#case-rows tr:has-text('{number}')")
    expect(row).to_be_visible()
    expect(row).to_contain_text("待立案")
    page.screenshot(path=SCREENSHOTS / "board-wall-acceptance-zh.png")
    row.locator("a").click()
    page.locator("button[data-action=set_severity]").click()
    page.select_option("form[data-form=set_severity] select", "urgent")
    page.locator("form[data-form=set_severity] button[type=submit]").click()
    expect(page.locator("#panel-message")).to_contain_text("已执行")
    page.locator("button[data-action=accept]").click()
    page.locator("form[data-form=accept] button[type=submit]").click()
    expect(page.locator("#panel-message")).to_contain_text("已执行")
    accepted = case_of(site, request_id, station)
    assert (accepted["status"], accepted["severity"]) == ("open", "urgent")
    expect(page.locator(f"#case-rows tr:has-text('{number}')")).to_have_count(0)  # no longer in the queue
    assert not problems
    context.close()


def test_a_station_names_a_handler_who_finds_the_case_under_mine(browser, site, place):
    worker = site.token("grid_worker", area=place["grid"], user="worker-assign")
    station = site.token("station", area=place["station"], user="station-zhou")
    colleague = site.token("station", area=place["station"], user="station-li")
    case = site.report(worker, place, "assign: 井盖缺失需要吊车 / a cover to lift", category="other")
    act(site, case["id"], worker, "escalate", reason="needs a crane")
    li_context, li_page, li_problems = open_page(browser, site, "/board/", colleague)  # li signs in once

    context, page, problems = open_page(browser, site, "/board/", station, lang="en")
    page.locator(f"#case-rows a:has-text('{case['number']}')").click()
    page.locator("button[data-action=assign]").click()
    page.fill("form[data-form=assign] input[name=assignee]", "station-li")
    page.locator("form[data-form=assign] button[type=submit]").click()
    expect(page.locator("#panel-message")).to_contain_text("Done")
    expect(page.locator("#panel-body .facts").first).to_contain_text("station-li")
    expect(page.locator("#panel-body .timeline")).to_contain_text("Handler named")

    li_page.select_option("#f-queue", "mine")
    expect(li_page.locator(f"#case-rows tr:has-text('{case['number']}')")).to_be_visible(timeout=5000)
    page.select_option("#f-queue", "unassigned")
    expect(page.locator(f"#case-rows tr:has-text('{case['number']}')")).to_have_count(0)
    assert not problems and not li_problems
    context.close()
    li_context.close()
