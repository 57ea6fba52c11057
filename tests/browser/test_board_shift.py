"""The board through a whole shift, in real Chromium at 360×740, 1366×768 and 1920×1080 in both languages: the
case panel in view on selection, the status column, the policy's warnings (``warned``), sorting, bulk
acknowledge and assign, the keys, a live event rebuilding one row, and the time left on a phone."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, SCREENSHOTS, WALL, act, axe_violations, open_page
from tests.support.system import auth, wait_for, wait_for_case

DESK = {"width": 1366, "height": 768}
SIZES = {"phone": PHONE, "desk": DESK, "wall": WALL}
MESSAGES = json.loads((Path(__file__).resolve().parents[2] / "services/escalation/pages/board/messages.json")
                      .read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shift(site):
    """A station's cases in one of its grids: two at level 1, two escalated to the station (level 2), one
    of them acknowledged there. Returns the station's token, the worker's and the cases by name."""
    place = site.grid(60)
    worker = site.token("grid_worker", area=place["grid"], user="shift-worker")
    station = site.token("station", area=place["station"], user="shift-station")
    cases = {}
    for name, text in (("first", "路灯闪烁 / a lamp flickers"), ("raised", "井盖松动 / a loose manhole cover"),
                       ("acknowledged", "护栏倒伏 / a railing is down"), ("newest", "广告牌歪斜 / a sign leans")):
        cases[name] = site.report(worker, place, text)
        wait_for_case(site.url, cases[name]["id"], station)
    for name in ("raised", "acknowledged"):
        act(site, cases[name]["id"], worker, "escalate", reason="需要工作站 / needs the station")
    act(site, cases["acknowledged"]["id"], station, "acknowledge", note="在路上 / on the way")
    return {"place": place, "worker": worker, "station": station, "cases": cases}


def at_rest(page) -> None:
    """Wait for the board at rest: the catalogues' names and the map's areas landed, and no whole-list
    render for 1 s (a loaded machine draws them late, and a render under the test's keys or events would
    make it measure the page's start instead)."""
    page.wait_for_selector("body[data-catalogues=loaded]")
    page.wait_for_selector("body[data-map-ready=true]", timeout=30000)
    page.wait_for_function("""() => {
        const now = window.gcBoardStats.fullRenders, t = performance.now();
        if (window.__renders !== now) { window.__renders = now; window.__since = t; return false; }
        return t - window.__since > 1000;
    }""", polling=100, timeout=30000)


def row(page, case):
    return page.locator(f"#case-rows tr[data-case='{case['id']}']")


def in_view(page, selector: str) -> bool:
    """Whether the element's middle is on screen and is the element (or inside it), not something over it."""
    return page.evaluate("""(selector) => {
        const el = document.querySelector(selector);
        const box = el.getBoundingClientRect();
        const x = box.left + Math.min(box.width / 2, 40), y = box.top + Math.min(box.height / 2, 12);
        if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
        const hit = document.elementFromPoint(x, y);
        return !!hit && (hit === el || el.contains(hit));
    }""", selector)


def cut_words(page, selector: str) -> list[str]:
    """The text of each element ``selector`` names that is wider than its box (cut, with or without "…")."""
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.innerText)""", selector)


def select_fits(page, selector: str) -> bool:
    """Whether a select is wide enough for its longest choice in its own font (its arrow and padding beside)."""
    return page.evaluate("""(selector) => {
        const select = document.querySelector(selector), style = getComputedStyle(select);
        const probe = document.createElement('span');
        probe.style.font = style.font;
        probe.style.whiteSpace = 'pre';
        probe.style.position = 'absolute';
        probe.style.visibility = 'hidden';
        document.body.append(probe);
        const widest = Math.max(...[...select.options].map((o) => {
            probe.textContent = o.text;
            return probe.offsetWidth;
        }));
        probe.remove();
        const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
        return widest <= room;
    }""", selector)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("size", list(SIZES))
def test_a_selected_case_is_in_view_with_its_status_and_the_time_left_always_shows(browser, site, shift, size, lang):
    words = MESSAGES[lang]
    context, page, problems = open_page(browser, site, "/board/", shift["station"], lang=lang, viewport=SIZES[size])
    cases = shift["cases"]
    for case in cases.values():
        expect(row(page, case)).to_be_visible(timeout=10000)
    status = "td.status-cell" if size != "phone" else "td.number-cell .phone-only"  # a phone: under the number
    expect(row(page, cases["acknowledged"]).locator(status)).to_contain_text(words["status_acknowledged"])
    expect(row(page, cases["first"]).locator(status)).to_contain_text(words["status_open"])
    # the time left: on screen in every row at every size, and the page never scrolls sideways
    for case in cases.values():
        cell = row(page, case).locator("td.time-left")
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= SIZES[size]["width"], f"time left cut off: {box}"
        assert cell.inner_text().strip() not in ("", "—")
    assert cut_words(page, "#case-rows td.time-left") == [], "a time left is cut"  # "1 d 16 h 10…" on a phone
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), "the page scrolls sideways"
    if size != "phone":  # nothing a reader needs is cut: an owner's name, the sort's choice
        assert cut_words(page, "#case-rows td.owner-cell .owner-line") == [], "an owner's name is cut"
        assert page.evaluate("(() => { const w = document.getElementById('table-wrap'); "
                             "return w.scrollWidth <= w.clientWidth; })()"), "the list scrolls sideways"
        assert select_fits(page, "#f-sort"), "the sort's choice is cut"
    # keys documented on the page (not on a phone, which has none)
    if size != "phone":
        expect(page.locator("#keys summary")).to_have_text(words["keys_heading"])

    row(page, cases["raised"]).locator("a").click()
    expect(page.locator("#panel-body")).to_contain_text(cases["raised"]["number"])
    expect(page.locator("#panel-body button[data-action=acknowledge]")).to_be_visible()
    assert in_view(page, "#panel-body .case-title"), "the opened case is not on screen"
    assert in_view(page, "#panel-body button[data-action=acknowledge]") or size == "phone"
    page.wait_for_timeout(300)  # the map settles
    page.screenshot(path=SCREENSHOTS / f"board-{size}-{lang}-case-open.png")
    violations = axe_violations(page)
    assert not violations, json.dumps(violations, ensure_ascii=False, indent=1)
    if size == "desk":  # the drawer closes, and the list is whole again
        page.locator("#panel-close").click()
        expect(page.locator("#panel")).not_to_have_class(re.compile(r"\bopen\b"))
        assert in_view(page, "#case-table")
    assert not problems
    context.close()


def test_warnings_come_from_the_policy_not_from_an_hour_left(browser, site, shift):
    """The board read a field ``warning`` the API never sends and called any case with under an hour left
    warned; the policy's warnings (``warned``, the share of the limit used) went unseen."""
    cases = shift["cases"]

    def edit(route):
        answer = route.fetch()
        data = answer.json()
        columns = data["columns"]
        for values in data["rows"]:
            if values[columns.index("id")] == cases["first"]["id"]:  # warned by the policy, days left
                values[columns.index("warned")] = 0.8
                values[columns.index("time_left")] = 5 * 86400
            if values[columns.index("id")] == cases["newest"]["id"]:  # half an hour left, no warning yet
                values[columns.index("warned")] = None
                values[columns.index("next_warning")] = None
                values[columns.index("time_left")] = 1800
        route.fulfill(response=answer, json=data)

    context = browser.new_context(viewport=DESK, locale="en-US")
    page = context.new_page()
    page.route("**/escalation/v1/cases/rows*", edit)
    page.goto(f"{site.url}/board/#token={shift['station']}")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    expect(row(page, cases["first"])).to_have_class(re.compile(r"\brow-warned\b"))
    expect(row(page, cases["first"]).locator(".state")).to_have_text(MESSAGES["en"]["state_warned"])
    expect(row(page, cases["newest"])).to_have_class(re.compile(r"\brow-on-time\b"))
    # and the API sends the field the board reads
    listed = requests.get(f"{site.url}/escalation/v1/cases/rows", headers=auth(shift["station"]), timeout=10).json()
    assert "warned" in listed["columns"] and "next_warning" in listed["columns"]
    context.close()


def test_the_list_sorts_by_time_left_level_or_reported(browser, site, shift):
    cases = shift["cases"]
    context, page, problems = open_page(browser, site, "/board/", shift["station"], lang="en", viewport=WALL)
    expect(row(page, cases["newest"])).to_be_visible(timeout=10000)
    page.select_option("#f-sort", "reported")
    expect(page.locator("#case-rows tr[data-case]").first).to_have_attribute("data-case", cases["newest"]["id"])
    page.select_option("#f-sort", "level")
    answer = requests.get(f"{site.url}/escalation/v1/cases/rows", headers=auth(shift["station"]), timeout=10).json()
    level_of = {row[answer["columns"].index("id")]: row[answer["columns"].index("level")] for row in answer["rows"]}

    def listed_by_level():  # the rows drawn, once the list is drawn again in the chosen order
        ids = page.evaluate(
            "() => Array.from(document.querySelectorAll('#case-rows tr[data-case]'), (tr) => tr.dataset.case)")
        levels = [level_of.get(case_id, 0) for case_id in ids]
        return ids if levels == sorted(levels, reverse=True) else None

    listed = wait_for(listed_by_level, timeout=5, message="the highest level first")  # other tests add cases here
    assert {cases["raised"]["id"], cases["acknowledged"]["id"]} <= set(listed[:12]), "the station's level-2 cases lead"
    page.select_option("#f-sort", "time_left")
    lefts = page.evaluate("""() => Array.from(document.querySelectorAll('#case-rows tr[data-case]'))
        .map((tr) => tr.querySelector('td.time-left').textContent)""")
    assert len(lefts) >= 4
    assert not problems
    context.close()


def test_bulk_acknowledge_and_assign_say_what_was_done_and_what_could_not_be(browser, site):
    place = site.grid(61)
    worker = site.token("grid_worker", area=place["grid"], user="bulk-worker")
    station = site.token("station", area=place["station"], user="bulk-station")
    up = [site.report(worker, place, f"bulk: a pothole, lane {i}") for i in range(2)]
    stays = site.report(worker, place, "bulk: a lamp out, still the grid worker's")
    for case in up:
        act(site, case["id"], worker, "escalate", reason="needs the station")
    wait_for_case(site.url, stays["id"], station)
    for lang in ("en", "zh"):
        words = MESSAGES[lang]
        context, page, problems = open_page(browser, site, "/board/", station, lang=lang, viewport=DESK)
        for case in (*up, stays):
            expect(row(page, case)).to_be_visible(timeout=10000)
            row(page, case).locator("input.pick").check()
        expect(page.locator("#bulk-count")).to_have_text(words["bulk_selected"].format(n=3))
        if lang == "en":
            page.locator("#bulk-acknowledge").click()
            expect(page.locator("#bulk-status")).to_contain_text("Acknowledge: 2 of 3 done.")
            expect(page.locator("#bulk-status")).to_contain_text(f"1 cannot be done now: {stays['number']}")
            for case in up:
                expect(row(page, case).locator("td.status-cell")).to_have_text(words["status_acknowledged"])
            expect(page.locator("#bulk-count")).to_have_text(words["bulk_selected"].format(n=1))  # the one left
            for case in up:
                row(page, case).locator("input.pick").check()
        page.locator("#bulk-assignee").fill("bulk-station")
        page.locator("#bulk-assign-form button[type=submit]").click()
        expect(page.locator("#bulk-status")).to_contain_text(
            words["bulk_done"].format(action=words["action_assign"], n=2, of=3))
        for case in up:
            answer = requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(station), timeout=10)
            assert answer.json()["assignee"] == "bulk-station"
        page.screenshot(path=SCREENSHOTS / f"board-desk-{lang}-bulk.png")
        violations = axe_violations(page)
        assert not violations, json.dumps(violations, ensure_ascii=False, indent=1)
        assert not problems
        context.close()


def test_the_keys_move_open_act_tick_and_close(browser, site, shift):
    context, page, problems = open_page(browser, site, "/board/", shift["station"], lang="en", viewport=DESK)
    expect(row(page, shift["cases"]["raised"])).to_be_visible(timeout=10000)
    at_rest(page)
    ids = page.evaluate("() => Array.from(document.querySelectorAll('#case-rows tr[data-case]'))"
                        ".map((t) => t.dataset.case)")

    def focused_on(case_id: str) -> None:
        """The keyboard's focus is in the row of ``case_id`` (and stays there through the window's redraw)."""
        page.wait_for_function("(id) => { const tr = document.activeElement.closest('tr');"
                               " return tr && tr.dataset.case === id; }", arg=case_id, timeout=5000)
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        now = page.evaluate("() => { const tr = document.activeElement.closest('tr'); return tr && tr.dataset.case; }")
        assert now == case_id, f"the focus left the row of {case_id} for {now} when the list was redrawn"

    page.locator("body").press("j")
    focused_on(ids[0])
    page.keyboard.press("j")
    focused_on(ids[1])
    page.keyboard.press("ArrowUp")
    focused_on(ids[0])
    # to the escalated case (the list scrolls under the cursor), open it, and take its first action
    target = ids.index(shift["cases"]["raised"]["id"])
    for i in range(target):
        page.keyboard.press("j")
        focused_on(ids[i + 1])
    page.keyboard.press("o")
    expect(page.locator("#panel-body")).to_contain_text(shift["cases"]["raised"]["number"])
    page.locator("body").press("1")
    first_action = page.locator("#panel-body button[data-action]").first.get_attribute("data-action")
    expect(page.locator(f"#action-form form[data-form={first_action}]")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#action-form form")).to_have_count(0)
    page.locator("body").press("Escape")
    expect(page.locator("#panel-close")).to_be_hidden()
    page.keyboard.press("x")
    expect(page.locator("#bulk")).to_be_visible()
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    page.keyboard.press("x")
    expect(page.locator("#bulk")).to_be_hidden()
    page.keyboard.press("?")
    expect(page.locator("#keys dl")).to_be_visible()
    for key in ("j", "k", "Enter", "x", "a", "Esc"):
        expect(page.locator("#keys kbd", has_text=key).first).to_be_visible()
    # the legend counts what the list holds, after a case was opened (and so replaced) in it
    shown = page.locator("#case-rows tr[data-case]").count()
    legend = sum(int(x.split()[-1]) for x in page.locator("#legend .state").all_inner_texts())
    assert legend == shown, (legend, shown)
    page.screenshot(path=SCREENSHOTS / "board-desk-en-keys.png", full_page=True)
    assert not problems
    context.close()


def test_a_live_event_rebuilds_its_own_row_and_no_other(browser, site, shift):
    place = site.grid(62)
    worker = site.token("grid_worker", area=place["grid"], user="live-row-worker")
    station = site.token("station", area=place["station"], user="live-row-station")
    filed = [site.report(worker, place, f"live row: a drain blocked, {i}") for i in range(4)]
    act(site, filed[0]["id"], worker, "escalate", reason="needs the station")
    context, page, problems = open_page(browser, site, "/board/", station, lang="en", viewport=WALL)
    for case in filed:
        expect(row(page, case)).to_be_visible(timeout=10000)
    at_rest(page)
    before = page.evaluate("""() => {
        document.querySelectorAll('#case-rows tr[data-case]').forEach((tr) => { tr.dataset.kept = 'yes'; });
        return Object.assign({}, window.gcBoardStats);
    }""")
    act(site, filed[0]["id"], station, "acknowledge", note="on the way")
    expect(row(page, filed[0]).locator("td.status-cell")).to_have_text("Acknowledged")
    after = page.evaluate("() => Object.assign({}, window.gcBoardStats)")
    assert after["fullRenders"] == before["fullRenders"], "a live event re-rendered the whole list"
    assert after["rowsBuilt"] - before["rowsBuilt"] <= 2, (before, after)
    for case in filed[1:]:  # the other rows are the same nodes as before
        expect(row(page, case)).to_have_attribute("data-kept", "yes")
    expect(row(page, filed[0])).not_to_have_attribute("data-kept", "yes")
    assert not problems
    context.close()


def test_an_open_case_is_read_again_in_the_language_switched_to(browser, site, shift):
    """The server's words on an open case (its timeline notes, its problems) follow the page's language: the
    switch asks for the case again with the new Accept-Language. At 1366 px the case's drawer leaves the top
    bar — the switch, sign-out — within reach."""
    context, page, problems = open_page(browser, site, "/board/", shift["station"], lang="zh", viewport=DESK)
    case = shift["cases"]["raised"]
    expect(row(page, case)).to_be_visible(timeout=10000)
    with page.expect_request(lambda r: r.url.endswith(f"/escalation/v1/cases/{case['id']}")) as asked:
        row(page, case).locator("a").click()
    assert asked.value.headers["accept-language"].startswith("zh")
    expect(page.locator("#panel-body")).to_contain_text(case["number"])
    with page.expect_request(lambda r: r.url.endswith(f"/escalation/v1/cases/{case['id']}")) as again:
        page.click("[data-lang-switch]")
    assert again.value.headers["accept-language"] == "en"
    expect(page.locator("#panel-body")).to_contain_text(MESSAGES["en"]["status_open"])
    assert not problems
    context.close()
