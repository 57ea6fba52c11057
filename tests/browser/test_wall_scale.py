"""The wall at city scale, in real Chromium: a sub-center with more open cases than a page of the case list
holds gets them from one request (``GET /escalation/v1/cases/rows``, the board's), counts them right, and
follows the live feed from the list's position, so a case opened between the two is not missed. An embedded
system of its own, seeded straight into escalation's table (``benchmarks.board.seed``)."""
from __future__ import annotations

import random
import re
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import expect

from benchmarks.board import crowd, report
from tests.browser.conftest import WALL
from tests.support.system import auth, embedded_system, wait_for_case

#: More than two pages of the case list's largest page (500): a wall that paged through it would ask thrice.
SEEDED = 1_200
OPEN = "open,acknowledged,dispatched,verifying,rework,suspended"


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    data = tmp_path_factory.mktemp("crowded-wall")
    with embedded_system(data) as base:
        crowded = crowd(base, data, SEEDED, tag="wall-crowd", days=(0.2, 20), overdue_share=0.08,
                        rng=random.Random(5))
        yield {"url": base, **crowded}


def expected_figures(crowded) -> tuple[int, int]:
    """The open cases of the watcher's area and how many of them are overdue (flagged, a department late,
    or no time left), as the rows answer them."""
    body = requests.get(f"{crowded['url']}/escalation/v1/cases/rows", params={"status": OPEN},
                        headers=auth(crowded["watcher"]), timeout=60).json()
    at = {name: body["columns"].index(name) for name in ("overdue", "department_overdue", "time_left")}
    overdue = sum(1 for row in body["rows"] if row[at["overdue"]] or row[at["department_overdue"]]
                  or (row[at["time_left"]] is not None and row[at["time_left"]] <= 0))
    assert body["total"] == len(body["rows"]) > 2 * 500
    return body["total"], overdue


def test_the_wall_reads_every_open_case_in_one_request_and_counts_them(browser, crowded):
    opened, overdue = expected_figures(crowded)
    assert 0 < overdue < opened
    context = browser.new_context(viewport=WALL, locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(urlsplit(r.url).path)
            if urlsplit(r.url).path.startswith("/escalation/v1/cases") else None)
    page.goto(f"{crowded['url']}/wall/#token={crowded['watcher']}")
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=30000)
    expect(page.locator("#fig-open [data-value]")).to_have_text(f"{opened:,}", timeout=30000)
    expect(page.locator("#fig-overdue [data-value]")).to_have_text(f"{overdue:,}")
    lists = [path for path in asked if path == "/escalation/v1/cases"]
    rows = [path for path in asked if path == "/escalation/v1/cases/rows"]
    one_by_one = [path for path in asked if re.fullmatch(r"/escalation/v1/cases/[0-9a-f-]{36}", path)]
    assert (len(lists), len(rows), one_by_one) == (0, 1, []), asked
    # the units' table counts the same cases: its open column sums to the figure
    units = page.locator("#unit-rows tr td:nth-child(3)").all_text_contents()
    assert sum(int(text.replace(",", "")) for text in units) == opened, units
    assert not problems, problems
    context.close()


def test_a_case_opened_between_the_list_and_the_feed_reaches_the_wall(browser, crowded):
    """The list's answer is read from the server, then a case opens, then the wall gets the answer: the feed,
    started from the answer's ``last_event_id``, brings the new case."""
    opened, _ = expected_figures(crowded)
    context = browser.new_context(viewport=WALL, locale="en-US")
    page = context.new_page()
    filed = []

    def late(route):
        answer = route.fetch(timeout=60000)
        if not filed:
            case = report(crowded["url"], crowded["worker"], crowded["point"].x, crowded["point"].y,
                          "wall: opened while the wall's list was on its way")
            wait_for_case(crowded["url"], case["id"], crowded["watcher"], timeout=30)
            filed.append(case)
        route.fulfill(response=answer)

    page.route(re.compile(r".*/escalation/v1/cases/rows(\?.*)?$"), late)
    page.goto(f"{crowded['url']}/wall/#token={crowded['watcher']}")
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=30000)
    assert filed
    expect(page.locator("#fig-open [data-value]")).to_have_text(f"{opened + 1:,}", timeout=15000)
    context.close()
