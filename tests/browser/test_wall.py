"""The wall screen (大屏, ``/wall/``): big live figures, the live map and the latest escalations, readable at
1920×1080 and 3840×2160 in both languages, accessible (axe-core), and back by itself after a server restart."""
from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, WALL, axe_violations, open_page
from tests.support.system import auth, wait_for_case

UHD = {"width": 3840, "height": 2160}


def escalate(site, case_id: str, token_: str, reason: str) -> dict:
    """The owner sends the case up a level."""
    wait_for_case(site.url, case_id, token_)
    url = f"{site.url}/escalation/v1/cases/{case_id}"
    detail = requests.get(url, headers=auth(token_), timeout=10)
    answer = requests.post(f"{url}/actions", json={"action": "escalate", "reason": reason},
                           headers=auth(token_, **{"If-Match": detail.headers["ETag"]}), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def wall_cases(site):
    """Cases in three grids, one of them escalated by its grid worker before the wall opens."""
    filed = []
    for index, (description, category) in enumerate((("路灯不亮 / lamp out", "street_light"),
                                                     ("占道经营 / stalls on the pavement", "other"),
                                                     ("井盖缺失 / a missing manhole cover", "road_damage"))):
        place = site.grid(index * 7)
        worker = site.token("grid_worker", area=place["grid"], user=f"wall-worker-{index}")
        case = site.report(worker, place, description, category=category)
        filed.append((case, worker, place))
    first, worker, _ = filed[0]
    escalate(site, first["id"], worker, "需要工作站协调 / the station must coordinate")
    return filed


def figure(page, name: str) -> str:
    return page.locator(f"#fig-{name} [data-value]").inner_text()


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("size_name", "viewport"), [("1080p", WALL), ("4k", UHD)])
def test_the_wall_shows_the_figures_the_map_and_the_escalations_readably_in_each_language(
        browser, site, wall_cases, size_name, viewport, lang):
    command = site.token("command", user="wall-screen")
    context, page, problems = open_page(browser, site, "/wall/", command, lang=lang, viewport=viewport)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    opened = requests.get(f"{site.url}/escalation/v1/cases", params={
        "status": "open,acknowledged,dispatched,verifying,rework,suspended", "page_size": 1},
        headers=auth(command), timeout=10).json()["total"]
    expect(page.locator("#fig-open [data-value]")).to_have_text(str(opened))
    expect(page.locator("#fig-today [data-value]")).not_to_have_text("—")
    # it counts cases opened today, not reports (a refused, voided or merged report is no case): it says so
    expect(page.locator("#fig-today .label")).to_have_text({"zh": "今日新增案卷", "en": "New cases today"}[lang])
    expect(page.locator("#units th").nth(1)).to_have_text({"zh": "今日新增", "en": "New today"}[lang])
    assert int(figure(page, "today").replace(",", "")) >= len(wall_cases)
    number = wall_cases[0][0]["number"]
    expect(page.locator("#escalation-list")).to_contain_text(number)  # read back from the feed's history
    expect(page.locator("#unit-rows tr")).to_have_count(6)  # the demo city's six sub-centers
    expect(page.locator("#map path.wall-pin, #map .cluster").first).to_be_attached()  # a pin, or a disc of them
    assert page.evaluate("document.documentElement.lang").startswith(lang)
    # readable across a room: the figures are at least a twentieth of the screen's height
    size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#fig-open [data-value]')).fontSize)")
    assert size >= viewport["height"] / 20, f"figures {size}px high on a {viewport['height']}px screen"
    overflow = page.evaluate("[document.scrollingElement.scrollWidth - innerWidth, "
                             "document.scrollingElement.scrollHeight - innerHeight]")
    assert overflow[0] <= 0 and overflow[1] <= 0, f"the wall scrolls by {overflow} px: it must fit the screen"
    if lang == "zh":
        assert "按期" in page.locator("#fig-on-time").inner_text()
    else:
        assert not re.search(r"[\u4e00-\u9fff]", page.locator(".figures").inner_text())
    page.wait_for_timeout(300)  # the map's polygons settle
    page.screenshot(path=SCREENSHOTS / f"wall-{size_name}-{lang}.png")
    violations = axe_violations(page)
    assert not violations, json.dumps(violations, ensure_ascii=False, indent=1)
    assert not problems, problems
    context.close()


def test_a_wall_without_escalations_says_so_under_the_heading(browser, site, wall_cases):
    """Found in a new user's trial: "No escalations yet" stood at the foot of the empty panel, under the
    room the list takes. Where the words stand is the layout's: a style the test sets on them keeps them shown
    whatever the page's list holds (the page hides them while an escalation is listed, and the list fills
    from the feed's history as it comes), so the place measured is where they stand when they are shown."""
    context, page, problems = open_page(browser, site, "/wall/", site.token("command", user="wall-quiet"),
                                        lang="en", viewport=WALL)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("document.getElementById('escalations-none').style.setProperty('display', 'block', 'important')")
    expect(page.locator("#escalations-none")).to_be_visible()
    heading, said = page.locator("#escalations-title").bounding_box(), page.locator("#escalations-none").bounding_box()
    assert said["y"] - (heading["y"] + heading["height"]) < 40, f"the words stand at {said}, the heading at {heading}"
    assert not problems
    context.close()


def test_a_new_escalation_and_a_new_report_reach_the_wall_live(browser, site, wall_cases):
    context, page, problems = open_page(browser, site, "/wall/", site.token("command", user="wall-live"), lang="en")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    before = int(figure(page, "open"))
    _, worker, place = wall_cases[1]
    case = site.report(worker, place, "wall: a new report")
    expect(page.locator("#fig-open [data-value]")).to_have_text(str(before + 1), timeout=5000)
    escalate(site, case["id"], worker, "wall: up to the station")
    first = page.locator("#escalation-list li").first
    expect(first).to_contain_text(case["number"], timeout=5000)
    expect(first).to_contain_text("up to station")
    assert not problems
    context.close()


def test_the_wall_recovers_by_itself_after_a_server_restart(browser, site, wall_cases):
    context, page, problems = open_page(browser, site, "/wall/", site.token("command", user="wall-restart"))
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "live")
    before = int(figure(page, "open"))
    site.stop()
    expect(live).to_have_attribute("data-state", "reconnecting", timeout=15000)
    site.start()
    _, worker, place = wall_cases[2]
    filed = site.report(worker, place, "wall: filed while the wall was reconnecting")  # nobody touches the wall
    expect(live).to_have_attribute("data-state", "live", timeout=30000)
    expect(page.locator("#fig-open [data-value]")).to_have_text(str(before + 1), timeout=10000)
    escalate(site, filed["id"], worker, "wall: after the restart")
    expect(page.locator("#escalation-list li").first).to_contain_text(filed["number"], timeout=5000)
    assert not [p for p in problems if "Content Security Policy" in p], problems
    context.close()


#: what the wall's map shows: the count on each cluster's disc, the single pins, the open cases' figure
MAP_COUNTS = """() => ({
    clusters: [...document.querySelectorAll('#map .leaflet-marker-pane .cluster')].map((c) => ({
        text: c.innerText.trim(), state: [...c.classList].find((k) => k.startsWith('cluster-')) || null,
        width: c.getBoundingClientRect().width })),
    pins: document.querySelectorAll('#map path.wall-pin').length,
    open: Number(document.querySelector('#fig-open [data-value]').textContent.replace(/,/g, '')) })"""


@pytest.fixture(scope="module")
def crossing(site):
    """Eleven cases at one crossing of a grid of their own."""
    place = site.grid(40)
    worker = site.token("grid_worker", area=place["grid"], user="wall-crossing")
    return [site.report(worker, place, f"路口积水 {n} / water at the crossing {n}", category="other")
            for n in range(11)]


@pytest.mark.parametrize(("size_name", "viewport"), [("1080p", WALL), ("4k", UHD)])
def test_cases_close_together_are_one_disc_with_their_count_as_on_the_board(browser, site, wall_cases, crossing,
                                                                             size_name, viewport):
    """Found in a new user's trial: eleven cases at one crossing were one small dot on the wall, with no
    count. They are clustered as on the board: a disc with the number of its cases, coloured by the most
    urgent, and the discs' counts and the single pins add up to the open cases."""
    context, page, problems = open_page(browser, site, "/wall/", site.token("command", user="wall-clusters"),
                                        lang="en", viewport=viewport)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.wait_for_function(f"""() => {{ const m = ({MAP_COUNTS})();
        return m.open > 0 && m.clusters.reduce((n, c) => n + Number(c.text), 0) + m.pins === m.open; }}""",
                           timeout=15000)
    shown = page.evaluate(MAP_COUNTS)
    assert all(re.fullmatch(r"\d+", c["text"]) and int(c["text"]) >= 2 for c in shown["clusters"]), shown
    assert any(int(c["text"]) >= len(crossing) for c in shown["clusters"]), f"the crossing's cases are no disc: {shown}"
    assert all(c["state"] in ("cluster-overdue", "cluster-warned", "cluster-on-time") for c in shown["clusters"])
    if size_name == "4k":  # twice the screen, twice the disc
        assert min(c["width"] for c in shown["clusters"]) >= 60, shown
    assert not problems, problems
    context.close()
