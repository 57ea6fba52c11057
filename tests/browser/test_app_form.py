"""The phone's report form at 360×740, in both languages, as a grid worker uses it: the outcome of a report
(its case number, or "kept") is where the eye is after submitting; nothing of a report — its photo least of
all — is carried into the next one, sent or kept offline; the network indicator never disagrees with what
the page says about the network; severity is offered where the policy has rules for it; every control is
a touch target of at least 44 × 44 px."""
from __future__ import annotations

import io
import json

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import CASE_NUMBER, PHONE, SCREENSHOTS, axe_violations, open_page
from tests.browser.test_app import cases_described, in_view, phone, photos_of
from tests.support.system import wait_for

#: what the page says, in each language
WORDS = {"zh": {"sent": "案卷号", "no_network": "没有网络", "sent_later": "已发送", "offline": "离线", "online": "在线",
                "normal": "一般", "urgent": "紧急"},
         "en": {"sent": "case number", "no_network": "No network", "sent_later": "sent", "offline": "Offline",
                "online": "Online", "normal": "Normal", "urgent": "Urgent"}}
both_languages = pytest.mark.parametrize("lang", ["zh", "en"])


def small_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


def attach_photo(page) -> None:
    page.set_input_files("#r-photo", files=[{"name": "IMG_0002.jpg", "mimeType": "image/jpeg", "buffer": small_jpeg()}])
    assert page.eval_on_selector("#r-photo", "e => e.files.length") == 1


def assert_form_empty(page) -> None:
    assert page.input_value("#r-description") == ""
    assert page.eval_on_selector("#r-photo", "e => e.files.length") == 0


def form_state(page) -> dict:
    """What the report form holds: the category, the severity checked, the description, the photos."""
    return page.evaluate("""() => ({
        category: document.getElementById('r-category').value,
        severity: (document.querySelector('#severity-choices input:checked') || {}).value || null,
        description: document.getElementById('r-description').value,
        photos: document.getElementById('r-photo').files.length })""")


def kept_photos(page) -> list[bool]:
    """Whether each report kept in the phone's outbox carries a photo, oldest first."""
    return page.evaluate("""GridcaseOutbox.waiting().then((items) => items
        .sort((a, b) => (a.queued_at < b.queued_at ? -1 : 1)).map((i) => !!i.photo))""")


@both_languages
def test_the_case_number_is_shown_where_the_eye_is_and_the_form_is_emptied_after_a_report_is_sent(
        browser, site, place, lang):
    words = WORDS[lang]
    context, page, problems = phone(browser, site, place, f"worker-eye-{lang}", lang)
    first = form_state(page)
    assert first["category"] != "manhole_cover" and first["severity"] != "urgent", first
    page.select_option("#r-category", "manhole_cover")
    assert form_state(page)["severity"] == "urgent"  # a missing cover's own
    description = f"eye ({lang}): 井盖缺失 / a manhole cover is missing"
    page.fill("#r-description", description)
    attach_photo(page)
    page.locator("#submit").scroll_into_view_if_needed()
    assert not in_view(page, "#message"), "at 360×740 the message line is above the fold when submitting"
    page.click("#submit")
    confirmation = page.locator("#message p")
    expect(confirmation).to_contain_text(words["sent"], timeout=15000)
    expect(confirmation).to_be_focused()
    assert in_view(page, "#message p")
    number = CASE_NUMBER.search(confirmation.inner_text()).group(0)
    assert_form_empty(page)
    # the whole form as it was first: the next report's category is chosen, not the last one's
    assert form_state(page) == first
    page.screenshot(path=SCREENSHOTS / f"app-phone-sent-{lang}.png")
    [case] = wait_for(lambda: cases_described(site, description), timeout=5, message="the case")
    assert case["number"] == number
    worker = site.token("grid_worker", area=place["grid"], user=f"worker-eye-{lang}")
    assert len(wait_for(lambda: photos_of(site, case["id"], worker), timeout=10, message="the photo")) == 1
    assert not axe_violations(page)
    assert not problems
    context.close()


@both_languages
def test_a_report_kept_offline_leaves_an_empty_form_and_its_photo_goes_with_it_alone(browser, site, place, lang):
    words = WORDS[lang]
    context, page, problems = phone(browser, site, place, f"worker-kept-{lang}", lang)
    assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    context.set_offline(True)
    first, second = f"kept ({lang}): 路灯不亮 / a lamp is out", f"kept ({lang}): 垃圾堆放 / rubbish piled up"
    page.fill("#r-description", first)
    attach_photo(page)
    page.click("#submit")
    message = page.locator("#message p")
    expect(message).to_contain_text(words["no_network"])
    expect(message).to_be_focused()
    assert in_view(page, "#message p")
    assert_form_empty(page)
    page.fill("#r-description", second)  # the next report, made at once: it has no photo of its own
    page.click("#submit")
    expect(page.locator("#outbox-status")).to_contain_text("2")
    assert kept_photos(page) == [True, False]

    context.set_offline(False)
    expect(page.locator("#message")).to_contain_text(words["sent_later"], timeout=20000)
    expect(page.locator("#outbox-status")).to_be_hidden()
    worker = site.token("grid_worker", area=place["grid"], user=f"worker-kept-{lang}")
    [with_photo] = wait_for(lambda: cases_described(site, first), timeout=5, message="the first case")
    [without] = wait_for(lambda: cases_described(site, second), timeout=5, message="the second case")
    assert len(wait_for(lambda: photos_of(site, with_photo["id"], worker), timeout=10, message="its photo")) == 1
    assert photos_of(site, without["id"], worker) == []
    assert not problems
    context.close()


@both_languages
def test_a_report_the_server_refuses_keeps_the_whole_form_to_be_corrected(browser, site, place, lang):
    """Intake's refusal (a 422, served here by answering the report's POST) is said, and nothing the worker
    chose or wrote is lost: category, severity, description and photo stay for the corrected report."""
    context, page, problems = phone(browser, site, place, f"worker-refused-form-{lang}", lang)
    page.route("**/intake/v1/reports", lambda route: route.fulfill(
        status=422, content_type="application/problem+json",
        body=json.dumps({"type": "about:blank", "title": "Unprocessable Content", "status": 422,
                         "detail": "description: too vague"})) if route.request.method == "POST" else route.fallback())
    page.select_option("#r-category", "manhole_cover")
    page.locator("#severity-choices label", has_text=WORDS[lang]["normal"]).click()
    page.fill("#r-description", f"refused form ({lang}): something")
    attach_photo(page)
    chosen = form_state(page)
    page.click("#submit")
    expect(page.locator("#message")).to_contain_text("description: too vague", timeout=15000)
    assert form_state(page) == chosen == {"category": "manhole_cover", "severity": "normal",
                                          "description": f"refused form ({lang}): something", "photos": 1}
    assert not problems
    context.close()


def network_says(page) -> tuple[bool, bool]:
    """(the badge says offline, the message says there is no network)."""
    badge = page.locator("#network").get_attribute("data-online") == "false"
    message = page.locator("#message").inner_text()
    return badge, any(w in message for w in ("没有网络", "No network"))


@both_languages
def test_the_network_indicator_and_the_messages_agree_when_the_server_cannot_be_reached(browser, site, place, lang):
    """The phone says it has a network (navigator.onLine) but nothing reaches the server — a gateway down, a
    captive Wi-Fi: the badge must not say "online" while the page says "no network"."""
    words = WORDS[lang]
    context, page, problems = phone(browser, site, place, f"worker-truth-{lang}", lang)
    expect(page.locator("#network")).to_have_text(words["online"])
    description = f"truth ({lang}): 消防通道堵塞 / a fire lane is blocked"
    backend = site.gateway.backend
    site.gateway.cut()
    try:
        page.fill("#r-description", description)
        page.click("#submit")
        expect(page.locator("#message")).to_contain_text(words["no_network"])
        expect(page.locator("#network")).to_have_text(words["offline"])
        assert page.evaluate("navigator.onLine") is True
        assert network_says(page) == (True, True)
        page.screenshot(path=SCREENSHOTS / f"app-phone-server-unreachable-{lang}.png")
    finally:
        site.gateway.backend = backend
    # the server is back: the phone finds it by itself, sends what it kept and says so, in one voice
    expect(page.locator("#message")).to_contain_text(words["sent_later"], timeout=30000)
    expect(page.locator("#network")).to_have_text(words["online"])
    assert network_says(page) == (False, False)
    assert len(wait_for(lambda: cases_described(site, description), timeout=5, message="the case")) == 1
    assert not problems
    context.close()


@both_languages
def test_severity_is_offered_where_the_policy_has_rules_for_more_than_one(browser, site, place, lang):
    """The demo policy rules both severities for every category; a city whose street lights have a rule for
    one severity only (served here by rewriting the categories answer) gets no choice, and the report
    sends none: the category's own applies."""
    words = WORDS[lang]
    worker = site.token("grid_worker", area=place["grid"], user=f"worker-severity-{lang}")
    context, page, problems = open_page(browser, site, "/app/", worker, lang=lang, viewport=PHONE,
                                        service_workers="block", permissions=["geolocation"],
                                        geolocation={"latitude": place["lat"], "longitude": place["lon"],
                                                     "accuracy": 12})

    def one_rule_for_street_lights(route):
        answer = route.fetch()
        categories = answer.json()
        for c in categories:
            if c["code"] == "street_light":
                c["severities"] = ["normal"]
        route.fulfill(response=answer, body=json.dumps(categories))

    page.route("**/intake/v1/categories", one_rule_for_street_lights)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")

    page.select_option("#r-category", "manhole_cover")
    field = page.locator("#severity-field")
    expect(field).to_be_visible()
    expect(field.locator("label")).to_have_text([words["normal"], words["urgent"]])
    assert page.is_checked("#severity-choices input[value=urgent]")  # a missing cover: urgent by default
    field.locator("label", has_text=words["normal"]).click()
    page.fill("#r-description", f"severity ({lang}): a loose cover, not dangerous")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/intake/v1/reports")) as sent:
        page.click("#submit")
    assert sent.value.post_data_json["severity"] == "normal"
    expect(page.locator("#message")).to_contain_text(words["sent"])
    assert CASE_NUMBER.search(page.locator("#message").inner_text()), "intake took the proposed severity"

    page.select_option("#r-category", "street_light")
    expect(field).to_be_hidden()
    page.fill("#r-description", f"severity ({lang}): a lamp is out")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/intake/v1/reports")) as sent:
        page.click("#submit")
    assert "severity" not in sent.value.post_data_json
    expect(page.locator("#message")).to_contain_text(words["sent"])
    assert not problems
    context.close()


#: what a finger can hit on the page: every control, a radio by its whole label, the map's zoom buttons
TARGETS = """() => Array.from(document.querySelectorAll(
    'button, select, textarea, input:not([type=radio]):not([type=checkbox]):not([type=hidden]), '
    + 'fieldset.choice label, .leaflet-control-zoom a, #bell-list a'))
  .filter((e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden')
  .map((e) => { const r = e.getBoundingClientRect();
    return { what: e.id || e.getAttribute('data-action') || e.textContent.trim().slice(0, 24) || e.tagName,
             width: Math.round(r.width), height: Math.round(r.height) }; })
  .filter((t) => t.width < 44 || t.height < 44)"""


@both_languages
def test_every_control_on_the_phone_is_a_touch_target_of_at_least_44_px(browser, site, place, lang):
    worker = site.token("grid_worker", area=place["grid"], user="worker-touch")
    site.report(worker, place, "touch: a task to act on", category="other")
    context, page, problems = phone(browser, site, place, "worker-touch", lang)
    expect(page.locator("#tasks-list button[data-action=resolve]").first).to_be_visible()
    page.locator("#tasks-list button[data-action=resolve]").first.click()  # the fix-on-the-spot form, too
    page.locator("#bell").click()
    expect(page.locator("#bell-panel")).to_be_visible()
    expect(page.locator("#severity-field")).to_be_visible()
    assert page.evaluate(TARGETS) == []
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    # the top bar is one row at 360 px: the title, the network, the bell and its count, the language, sign-out
    bar = page.evaluate("""[...document.querySelectorAll('.topbar > *')].filter((e) => e.offsetParent)
        .map((e) => { const r = e.getBoundingClientRect();
                      return { what: e.textContent.trim(), middle: Math.round(r.top + r.height / 2),
                               width: Math.round(r.width) }; })""")
    middles = [part["middle"] for part in bar]
    assert len(bar) == 5 and max(middles) - min(middles) <= 4, f"the top bar wraps: {bar}"
    assert page.evaluate("(() => { const h = document.querySelector('.topbar h1'); "
                         "return h.scrollWidth <= h.clientWidth; })()"), "the title is cut"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SCREENSHOTS / f"app-phone-topbar-{lang}.png", clip={"x": 0, "y": 0, "width": 360,
                                                                              "height": 160})
    assert not axe_violations(page)
    assert not problems
    context.close()
