"""Early warning (预警) in real Chromium: five street lights reported out within a few metres raise one
item, drawn on the board's map as a circle with its count and listed beside it, in both languages, on the
wall and on a phone; the station opens it, acknowledges it with a note, sees a sixth report join it live
and closes it. The desk colours the grids by their reports over the period (hotspots)."""
from __future__ import annotations

import math
import time

import requests
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, SCREENSHOTS, WALL, axe_violations, open_page
from tests.support.system import auth


def near(place: dict, metres_east: float, metres_north: float = 0.0) -> dict:
    return {**place, "lon": place["lon"] + metres_east / (111_195 * math.cos(math.radians(place["lat"]))),
            "lat": place["lat"] + metres_north / 111_195}


def wait_for_item(site, token_: str, case_ids: set[str], count: int, timeout: float = 15.0) -> dict:
    """The early warning holding ``case_ids``, once it holds ``count`` cases."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = requests.get(f"{site.url}/escalation/v1/warnings", headers=auth(token_), timeout=10).json()["items"]
        found = [i for i in items if case_ids <= set(i["reports"])]
        if found and found[0]["count"] == count:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no early warning of {count} holding {case_ids} within {timeout}s: {items}")


def test_the_board_shows_a_cluster_on_its_map_and_the_station_acknowledges_and_closes_it(browser, site):
    place = site.grid(7)  # a grid of its own: the other tests report in the first one
    worker = site.token("grid_worker", area=place["grid"], user="worker-early-warning")
    command = site.token("command", user="duty-officer")
    filed = [site.report(worker, near(place, 4 * n, 3 * (n % 2)), f"lamp {n + 1} out on the east road")
             for n in range(5)]
    item = wait_for_item(site, command, {c["id"] for c in filed}, 5)

    for lang, heading, status in (("zh", "预警事项", "待处理"), ("en", "Early warnings", "Open")):
        context, page, problems = open_page(browser, site, "/board/", command, lang=lang, viewport=WALL)
        entry = page.locator(f"#warning-list li[data-warning='{item['id']}']")
        expect(entry).to_contain_text(status, timeout=10000)
        expect(page.locator("#warnings")).to_contain_text(heading)
        expect(page.locator(f".warning-count-{item['id']}")).to_have_text("5")
        entry.locator("a").click()
        expect(page.locator("#warning-title")).to_contain_text("5")
        expect(page.locator("ol.warning-reports li")).to_have_count(5)
        page.screenshot(path=SCREENSHOTS / f"board-wall-{lang}-early-warning.png")
        assert not axe_violations(page), "the early warnings are accessible"
        assert not problems
        context.close()

    context, page, problems = open_page(browser, site, "/board/", command, lang="zh", viewport=PHONE)
    expect(page.locator(f"#warning-list li[data-warning='{item['id']}']")).to_be_visible(timeout=10000)
    expect(page.locator(f".warning-count-{item['id']}")).to_have_text("5")
    page.screenshot(path=SCREENSHOTS / "board-phone-zh-early-warning.png", full_page=True)
    assert not problems
    context.close()

    station = site.token("station", area=place["station"], user="station-early-warning")
    context, page, problems = open_page(browser, site, "/board/", station, lang="en", viewport=WALL)
    page.locator(f"#warning-list li[data-warning='{item['id']}'] a").click()
    page.locator("button[data-warning-action=acknowledge]").click()
    form = page.locator("form[data-form=warning-acknowledge]")
    form.locator("button[type=submit]").click()  # no note: the browser asks for one, nothing is sent
    expect(page.locator("#warning-title")).to_contain_text("Open")
    form.locator("textarea[name=note]").fill("one feeder cable: the power company is on its way")
    form.locator("button[type=submit]").click()
    expect(page.locator("#panel-message")).to_contain_text("Done")
    expect(page.locator("#warning-title")).to_contain_text("Acknowledged")
    expect(page.locator("#panel-body ol.timeline")).to_contain_text("one feeder cable")

    sixth = site.report(worker, near(place, -6), "lamp 6 out too")
    expect(page.locator(f".warning-count-{item['id']}")).to_have_text("6", timeout=10000)  # the live feed
    expect(page.locator("ol.warning-reports li")).to_have_count(6)
    assert sixth["id"] in wait_for_item(site, station, {sixth["id"]}, 6)["reports"]

    page.locator("button[data-warning-action=close]").click()
    page.locator("form[data-form=warning-close] textarea[name=note]").fill("cable replaced, all six lamps on")
    page.locator("form[data-form=warning-close] button[type=submit]").click()
    expect(page.locator("#warning-title")).to_contain_text("Closed")
    expect(page.locator(f"#warning-list li[data-warning='{item['id']}']")).to_have_count(0)
    expect(page.locator(f".warning-count-{item['id']}")).to_have_count(0)
    expect(page.locator("button[data-warning-action]")).to_have_count(0)
    assert not problems
    context.close()


def test_more_active_items_than_the_list_brings_are_counted_whole_and_the_newest_listed(browser, site):
    command = site.token("command", user="duty-officer")
    for index in (8, 9):  # two items, in grids of their own
        place = site.grid(index)
        worker = site.token("grid_worker", area=place["grid"], user=f"worker-ew-{index}")
        filed = [site.report(worker, near(place, 4 * n), f"lamp {n + 1} out by the school") for n in range(5)]
        wait_for_item(site, command, {c["id"] for c in filed}, 5)
    active = requests.get(f"{site.url}/escalation/v1/warnings", headers=auth(command), timeout=10,
                          params={"status": "open,acknowledged", "page_size": 1}).json()
    assert active["total"] >= 2
    context, page, problems = open_page(browser, site, "/board/", command, lang="en", viewport=WALL)
    # the server answers a page of one, as it answers a page of 500 when more items than that are active
    page.route("**/escalation/v1/warnings?*", lambda route: route.continue_(
        url=route.request.url.replace("page_size=500", "page_size=1")))
    page.reload()
    expect(page.locator("#warning-list li[data-warning]")).to_have_count(1, timeout=10000)
    expect(page.locator("#warning-list li[data-warning]")).to_have_attribute("data-warning", active["items"][0]["id"])
    expect(page.locator("#warning-count")).to_have_text(f"({active['total']}; the newest 1 listed)")
    assert not problems
    context.close()


def test_the_desk_colours_the_grids_by_their_reports_over_the_period(browser, site):
    place = site.grid(9)
    for index, reports in ((9, 3), (10, 2), (11, 1), (12, 1)):
        grid = site.grid(index)
        worker = site.token("grid_worker", area=grid["grid"], user=f"worker-hotspot-{index}")
        for n in range(reports):
            site.report(worker, near(grid, 3 * n), f"desk: dumped rubbish {n + 1}", category="illegal_dumping")
    supervisor = site.token("supervisor", user="supervisor-hotspots")
    grid_name = requests.get(f"{site.url}/dispatch/v1/locate", params={"lon": place["lon"], "lat": place["lat"]},
                             headers=auth(supervisor), timeout=10).json()["grid"]["name"]
    for lang, heading, category in (("zh", "热点", "乱堆乱放"), ("en", "Hotspots", "Illegal dumping")):
        context, page, problems = open_page(browser, site, "/desk/", supervisor, lang=lang, viewport=WALL)
        expect(page.locator("#hotspot-legend .swatch").first).to_be_visible(timeout=15000)
        expect(page.locator("#hotspots-title")).to_have_text(heading)
        page.locator("#h-category").select_option("illegal_dumping")
        page.wait_for_selector("body[data-hotspot-category=illegal_dumping]")
        rows = page.locator("#hotspot-table tbody tr")
        expect(rows.filter(has_text=grid_name)).to_contain_text("3")
        for n in range(rows.count()):
            expect(rows.nth(n)).to_contain_text(category)
        expect(page.locator("#hotspot-legend .swatch")).to_have_count(3)  # 1, 2 and 3 reports: a class each
        page.evaluate("document.getElementById('hotspots-title').scrollIntoView({block: 'start'})")
        page.screenshot(path=SCREENSHOTS / f"desk-wall-{lang}-hotspots.png")
        assert not axe_violations(page), "the hotspot view is accessible"
        assert not problems
        context.close()
    # on a phone a category's name stays whole (路灯损坏 broke as 路灯损 over 坏); the table scrolls sideways
    context, page, problems = open_page(browser, site, "/desk/", supervisor, lang="zh", viewport=PHONE)
    page.locator("#h-category").select_option("illegal_dumping")
    page.wait_for_selector("body[data-hotspot-category=illegal_dumping]")
    cell = page.locator("#hotspot-table tbody td.category").first
    expect(cell).to_have_text("乱堆乱放")
    lines = cell.evaluate("c => { const r = document.createRange(); r.selectNodeContents(c);"
                          " return r.getBoundingClientRect().height / parseFloat(getComputedStyle(c).fontSize); }")
    assert lines < 2, f"the category's name takes {lines:.1f} font sizes of height: it broke"
    assert not problems
    context.close()
