"""Every page: its labels in both languages, accessibility (axe-core), the security policy, and
screenshots at phone and wall sizes in both languages (docs/screenshots, linked from the README)."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, ROOT_PAGES, SCREENSHOTS, WALL, axe_violations, open_page, resolve

CJK = re.compile(r"[\u4e00-\u9fff]")
PAGES = {"board": "station", "app": "grid_worker", "desk": "supervisor", "wall": "command"}


def page_token(site, place, page_name: str) -> str:
    role = PAGES[page_name]
    area = {"station": place["station"], "grid_worker": place["grid"]}.get(role)
    return site.token(role, **({"area": area} if area else {}), user=f"{role}-pages")


def catalogue(page_name: str) -> dict:
    return json.loads((ROOT_PAGES[page_name] / "messages.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def some_cases(site, place):
    reports = (("树枝挡住3号门 / a branch blocks gate 3", "other"),
               ("垃圾堆在消防通道 / rubbish in the fire lane", "fire_lane_blocked"),
               ("路面塌陷 / the road has sunk", "road_damage"),
               ("楼道堆放杂物 / clutter in a stairwell", "illegal_dumping"))
    for index, (description, category) in enumerate(reports):
        grid = site.grid(index)
        user = PAGES["app"] + "-pages" if index == 0 else f"grid_worker-{grid['grid']}"
        worker = site.token("grid_worker", area=grid["grid"], user=user)
        case = site.report(worker, grid, description, category=category)
        if index == 0:  # one awaits the grid worker's verification on the phone page
            station = site.token("station", area=grid["station"], user="station-pages")
            resolve(site, case["id"], worker, station, note="已修复 / repaired")


@pytest.mark.parametrize("page_name", list(PAGES))
def test_each_page_has_no_serious_accessibility_violation_and_is_pictured_in_both_languages(
        browser, site, place, some_cases, page_name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for lang in ("zh", "en"):
        for size_name, viewport in (("phone", PHONE), ("wall", WALL)):
            options = {"permissions": ["geolocation"], "geolocation": {
                "latitude": place["lat"], "longitude": place["lon"], "accuracy": 15}} if page_name == "app" else {}
            context, page, problems = open_page(browser, site, f"/{page_name}/", page_token(site, place, page_name),
                                                lang=lang, viewport=viewport, **options)
            if page_name == "board":
                page.locator("#case-rows a").first.click()
                expect(page.locator("#panel-body")).to_be_visible()
            page.wait_for_timeout(300)  # map tiles of polygons and charts settle
            assert page.evaluate("document.documentElement.lang").startswith(lang)
            overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{page_name} is {overflow}px wider than a {viewport['width']}px screen"
            page.screenshot(path=SCREENSHOTS / f"{page_name}-{size_name}-{lang}.png", full_page=size_name == "phone")
            violations = axe_violations(page)
            assert not violations, json.dumps(violations, ensure_ascii=False, indent=1)
            assert not problems, problems
            context.close()


@pytest.mark.parametrize("page_name", list(PAGES))
def test_the_language_switch_changes_every_label_and_is_remembered(browser, site, place, page_name):
    messages = catalogue(page_name)
    context, page, _ = open_page(browser, site, f"/{page_name}/", page_token(site, place, page_name), lang="zh")
    labelled = page.locator("[data-i18n]")

    def labels():
        return labelled.evaluate_all("els => els.map(e => [e.dataset.i18n, e.textContent])")

    assert all(text == messages["zh"][key] for key, text in labels())
    page.locator("[data-lang-switch]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    after = labels()
    assert after and all(text == messages["en"][key] for key, text in after)
    assert not [text for _, text in after if CJK.search(text)]
    assert page.title() == messages["en"]["title"]
    page.reload()  # the choice is kept over the Accept-Language of the browser (zh-CN)
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert all(text == messages["en"][key] for key, text in labels())
    context.close()


@pytest.mark.parametrize("page_name", list(PAGES))
def test_the_address_picks_the_language_and_it_is_remembered(browser, site, place, page_name):
    """A command center sets a wall screen's address once (/wall/?lang=en): every page reads it, over the
    browser's Accept-Language, keeps it as the switch's choice, and ignores a language it does not have."""
    messages = catalogue(page_name)
    token_ = page_token(site, place, page_name)
    context, page, _ = open_page(browser, site, f"/{page_name}/?lang=en", token_, lang="zh")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.title() == messages["en"]["title"]
    assert page.evaluate("localStorage.getItem('gridcase.lang')") == "en"
    page.goto(f"{site.url}/{page_name}/")  # the address without it: the choice is kept
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto(f"{site.url}/{page_name}/?lang=constructor")  # not a language: the kept choice stands
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto(f"{site.url}/{page_name}/?lang=zh")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert page.title() == messages["zh"]["title"]
    context.close()

    # a new screen with an unknown value and nothing kept: the browser's language, as without the address's
    context, page, _ = open_page(browser, site, f"/{page_name}/?lang=fr", token_, lang="en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.evaluate("localStorage.getItem('gridcase.lang')") is None
    context.close()


def test_the_server_renders_the_language_the_browser_asks_for(site):
    import requests

    english = requests.get(f"{site.url}/board/", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"}, timeout=10)
    chinese = requests.get(f"{site.url}/board/", headers={"Accept-Language": "fr, zh-CN;q=0.8"}, timeout=10)
    default = requests.get(f"{site.url}/board/", timeout=10)
    assert '<html lang="en">' in english.text and "<title>Command-center board</title>" in english.text
    assert '<html lang="zh-CN">' in chinese.text and '<html lang="zh-CN">' in default.text
    policy = english.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert english.headers["X-Content-Type-Options"] == "nosniff"
