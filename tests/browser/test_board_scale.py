"""The board at city scale, in real Chromium: a sub-center with thousands of open cases gets its first screen
from one request, draws only the rows in view (a virtualised list) and clusters its pins; scrolling reaches
the last case. An embedded system of its own, seeded straight into escalation's table
(``benchmarks.board.seed``), so the shared one keeps its small numbers."""
from __future__ import annotations

import json
import random
import re

import pytest
import requests
from playwright.sync_api import expect

from benchmarks.board import crowd
from tests.browser.conftest import PHONE, SCREENSHOTS, WALL, axe_violations, open_page
from tests.support.system import auth, embedded_system

SEEDED = 3_000


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    data = tmp_path_factory.mktemp("crowded")
    with embedded_system(data) as base:
        crowded = crowd(base, data, SEEDED, tag="crowd", days=(0.2, 20), overdue_share=0.08, rng=random.Random(3))
        yield {"url": base, "watcher": crowded["watcher"], "total": SEEDED + 1}


class Here:
    """What ``open_page`` needs of a site: its URL."""

    def __init__(self, url: str):
        self.url = url


def test_one_request_brings_every_open_case_with_the_listed_columns(crowded):
    answer = requests.get(f"{crowded['url']}/escalation/v1/cases/rows", headers=auth(crowded["watcher"]), timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == crowded["total"] == len(body["rows"])
    assert {"number", "status", "level", "owner", "time_left", "warned", "lon", "lat"} <= set(body["columns"])
    owner = body["columns"].index("owner")
    assert all(row[owner] in body["names"] for row in body["rows"])
    levels = {name: body["columns"].index(name) for name in ("grid", "station", "subcenter", "hq")}
    for row in body["rows"][:50]:  # each owner's column holds that level's area (the hierarchy's ids nest)
        grid, station, subcenter, hq = (row[levels[name]] for name in ("grid", "station", "subcenter", "hq"))
        assert grid.startswith(station) and station.startswith(subcenter) and hq != grid, row
    few = requests.get(f"{crowded['url']}/escalation/v1/cases/rows", params={"limit": 10},
                       headers=auth(crowded["watcher"]), timeout=60).json()
    assert len(few["rows"]) == 10 and few["total"] == crowded["total"]


@pytest.mark.parametrize(("size", "viewport", "lang"), [("wall", WALL, "zh"), ("phone", PHONE, "en")])
def test_thousands_of_cases_draw_only_the_rows_in_view_and_clustered_pins(browser, crowded, size, viewport, lang):
    context, page, problems = open_page(browser, Here(crowded["url"]), "/board/", crowded["watcher"], lang=lang,
                                        viewport=viewport)
    page.wait_for_selector("body[data-list-painted=true]", timeout=30000)
    expect(page.locator("#count")).to_contain_text(f"{crowded['total']}")
    drawn = page.locator("#case-rows tr[data-case]").count()
    assert 5 <= drawn <= 120, f"{drawn} rows in the DOM for {crowded['total']} cases"
    assert page.evaluate("document.getElementById('case-table').getAttribute('aria-rowcount')") == str(
        crowded["total"] + 1)
    page.wait_for_selector("body[data-map-ready=true]", timeout=60000)
    clusters = page.locator(".cluster").count()
    pins = page.locator(".leaflet-marker-icon.pin").count()
    assert clusters > 0 and clusters + pins < 500, (clusters, pins)
    # the time left shows in the first rows, overdue ones first
    first = page.locator("#case-rows tr[data-case]").first
    expect(first.locator("td.time-left")).to_be_visible()
    assert "row-overdue" in first.get_attribute("class")
    if size == "phone":  # the list, under the search and the filters
        page.evaluate("() => document.getElementById('cases').scrollIntoView()")
    page.wait_for_timeout(300)
    page.screenshot(path=SCREENSHOTS / f"board-{size}-{lang}-{SEEDED}-cases.png")
    # scrolled to the end: the last case is drawn, and still only a window of rows
    page.evaluate("() => { const w = document.getElementById('table-wrap'); w.scrollTop = w.scrollHeight; }")
    expect(page.locator(f"#case-rows tr[aria-rowindex='{crowded['total'] + 1}']")).to_be_attached()
    assert page.locator("#case-rows tr[data-case]").count() <= 120
    if size == "wall":
        violations = axe_violations(page)
        assert not violations, json.dumps(violations, ensure_ascii=False, indent=1)
    assert not problems
    context.close()


def test_the_first_screen_is_drawn_from_a_first_page_while_the_whole_list_is_on_its_way(browser, crowded):
    """The page's head asks for the first screen (``?limit=``) and then for the whole list: the first screen
    is drawn from the first answer — its rows in the order the whole list gives them, the count the whole
    list's, the states' counts waiting — and the whole list, held back here, then fills the counts and the
    map."""
    held = []
    context = browser.new_context(viewport=WALL, locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.route(re.compile(r".*/escalation/v1/cases/rows$"), lambda route: held.append(route))  # the whole list waits
    page.goto(f"{crowded['url']}/board/#token={crowded['watcher']}")
    page.wait_for_selector("body[data-list-painted=true]", timeout=30000)
    for _ in range(300):  # the whole list's request, asked for once the first page is in, reaches the route
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1 and page.evaluate("document.body.dataset.mapReady") is None
    expect(page.locator("#count")).to_contain_text(f"{crowded['total']}")
    assert page.evaluate("document.getElementById('case-table').getAttribute('aria-rowcount')") == str(
        crowded["total"] + 1)
    expect(page.locator("#legend")).to_contain_text("…")
    expect(page.locator("#list-status")).to_have_text("Loading…")  # rows past the first screen are on their way
    numbers = "() => Array.from(document.querySelectorAll('#case-rows tr[data-case] a')).map((a) => a.textContent)"
    first = page.evaluate(numbers)
    assert 5 <= len(first) <= 100, first
    assert "row-overdue" in page.locator("#case-rows tr[data-case]").first.get_attribute("class")
    held[0].continue_()
    page.wait_for_selector("body[data-map-ready=true]", timeout=60000)
    expect(page.locator("#legend")).not_to_contain_text("…")
    legend = page.locator("#legend .state").all_text_contents()
    assert sum(int(text.rsplit(" ", 1)[1]) for text in legend) == crowded["total"], legend
    assert page.evaluate(numbers)[:len(first)] == first  # the same rows, in the same order
    assert not problems
    context.close()


def test_a_filter_chosen_before_the_whole_list_is_in_counts_nothing_until_it_is(browser, crowded):
    """A filter changed while only the first screen is in sets the first screen aside: the board says the list
    is loading and counts nothing (no "0 cases", no state at 0) until the whole list is in, then counts it."""
    held = []
    context = browser.new_context(viewport=WALL, locale="en-US")
    page = context.new_page()
    page.route(re.compile(r".*/escalation/v1/cases/rows$"), lambda route: held.append(route))  # the whole list waits
    page.goto(f"{crowded['url']}/board/#token={crowded['watcher']}")
    page.wait_for_selector("body[data-list-painted=true]", timeout=30000)
    for _ in range(300):
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    page.select_option("#f-level", "1")
    expect(page.locator("#list-status")).to_have_text("Loading…")
    expect(page.locator("#count")).to_have_text("(…)")
    legend = page.locator("#legend .state").all_text_contents()
    assert legend and all(text.endswith(" …") for text in legend), legend
    held[0].continue_()
    expect(page.locator("#list-status")).to_have_text("")
    expect(page.locator("#legend")).not_to_contain_text("…", timeout=30000)
    shown = int(page.locator("#count").inner_text().strip("()"))
    legend = page.locator("#legend .state").all_text_contents()
    assert 0 < shown <= crowded["total"] and sum(int(text.rsplit(" ", 1)[1]) for text in legend) == shown, legend
    context.close()


def test_the_keys_walk_down_a_long_list_and_the_focus_follows_as_the_rows_in_view_are_redrawn(browser, crowded):
    """Walking down with ``j`` past the rows in view scrolls the list, and the window of drawn rows is redrawn
    under the cursor: the row the cursor is on keeps the keyboard's focus (a row moved in the DOM loses it)."""
    context, page, problems = open_page(browser, Here(crowded["url"]), "/board/", crowded["watcher"], lang="en",
                                        viewport={"width": 1366, "height": 768})
    page.wait_for_selector("body[data-list-painted=true]", timeout=30000)
    page.wait_for_selector("body[data-map-ready=true]", timeout=60000)
    case_at = "(i) => { const tr = document.querySelector(`#case-rows tr[aria-rowindex='${i + 2}']`);" \
              " return tr && tr.dataset.case; }"
    focused = "() => { const tr = document.activeElement.closest('tr'); return tr && tr.dataset.case; }"
    settled = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    page.locator("body").press("j")
    for i in range(60):
        if i:
            page.keyboard.press("j")
        page.evaluate(settled)
        assert page.evaluate(focused) == page.evaluate(case_at, i), f"after {i + 1} presses of j"
    assert page.evaluate("document.getElementById('table-wrap').scrollTop") > 0
    assert page.locator("#case-rows tr[data-case]").count() <= 120
    assert not problems
    context.close()


@pytest.mark.parametrize(("query", "field"), [({"status": "open,nonsense"}, "status"), ({"limit": "0"}, "limit"),
                                              ({"limit": "50001"}, "limit"), ({"limit": "1_0"}, "limit"),
                                              ({"page": "2"}, "page")])
def test_a_bad_query_is_a_problem_naming_the_field(crowded, query, field):
    answer = requests.get(f"{crowded['url']}/escalation/v1/cases/rows", params=query,
                          headers=auth(crowded["watcher"]), timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert field in answer.text


def test_the_rows_need_a_token(crowded):
    assert requests.get(f"{crowded['url']}/escalation/v1/cases/rows", timeout=30).status_code == 401
