"""延期 in the limit's own unit, in real Chromium at 1366×768 in both languages: the station holding a case whose
limit is in working hours sees that limit in the panel, is offered working hours first and chosen in the
extension form, and the request it sends is taken as working hours (the case's pending extension says so)."""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import act, axe_violations, open_page
from tests.support.system import auth

LAPTOP = {"width": 1366, "height": 768}
WORDS = {"zh": {"working_hours": "工作小时", "limit": "本级时限", "pending": "待批延期", "done": "申请延期"},
         "en": {"working_hours": "working hours", "limit": "Limit at this level", "pending": "Extension asked",
                "done": "Request extension"}}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_working_hours_limit_is_extended_in_working_hours(browser, site, place, lang):
    words = WORDS[lang]
    worker = site.token("grid_worker", area=place["grid"], user=f"worker-extension-{lang}")
    station = site.token("station", area=place["station"], user=f"station-extension-{lang}")
    case = site.report(worker, place, f"board: lamp post leaning over the road ({lang})")
    # the policy's level 2 (the station) allows 8 working hours; the station holds the case once it climbs
    escalated = act(site, case["id"], worker, "escalate", reason="needs the station's lift")
    assert escalated["limit"] == {"amount": 8.0, "unit": "working_hours"}

    context, page, problems = open_page(browser, site, "/board/", station, lang=lang, viewport=LAPTOP)
    # a case number in the search box opens that case, wherever it sits in a long (virtualised) list
    page.fill("#q", escalated["number"])
    page.locator("#search button[type=submit]").click()
    facts = page.locator("#panel-body dl.facts").first
    expect(facts).to_contain_text(words["limit"])
    expect(facts).to_contain_text(f"8 {words['working_hours']}")
    # one of a unit reads as one in English ("1 hour", not "1 hours"); Chinese has no plural
    singular = page.evaluate("() => ['working_hours', 'working_days', 'hours']"
                             ".map((u) => gc.t('limit_' + u, { n: 1 }))")
    assert singular == ({"en": ["1 working hour", "1 working day", "1 hour (around the clock)"],
                         "zh": ["1 工作小时", "1 工作日", "1 小时（全天计）"]}[lang]), singular
    page.locator("#panel-body button[data-action=request_extension]").click()
    form = page.locator("form[data-form=request_extension]")
    unit = form.locator("select[name=unit]")
    assert unit.locator("option").first.get_attribute("value") == "working_hours"
    expect(unit.locator("option").first).to_have_text(words["working_hours"])
    expect(unit).to_have_value("working_hours")
    assert unit.locator("option").evaluate_all("(os) => os.map((o) => o.value)") == [
        "working_hours", "working_days", "hours", "minutes"]
    form.locator("input[name=amount]").fill("2")
    form.locator("textarea[name=reason]").fill("the lift truck comes tomorrow morning")
    form.locator("button[type=submit]").click()
    expect(page.locator("#panel-message")).to_contain_text(words["done"])
    expect(facts).to_contain_text(words["pending"])
    expect(facts).to_contain_text(f"2 {words['working_hours']}")
    assert not axe_violations(page)
    assert not problems
    context.close()

    detail = requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(station), timeout=10).json()
    assert detail["pending_extension"]["amount"] == {"amount": 2.0, "unit": "working_hours"}
    assert detail["timeline"][-1]["type"] == "extension_requested"
