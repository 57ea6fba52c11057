"""The phone in the reporter's language for what the server says: why a report was refused (the reason is
the system's word, the note the person's own) reads in Chinese on a Chinese phone at 360×740, and in
English when the page is switched, without a reload."""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import CASE_NUMBER, PHONE, SCREENSHOTS, Site, act, axe_violations
from tests.browser.test_app import phone
from tests.support.system import ROOT, auth, wait_for


@pytest.fixture(scope="module")
def accepting(tmp_path_factory):
    """A site whose grid workers' reports wait for acceptance (立案), so that one can be refused."""
    data = tmp_path_factory.mktemp("browser-accepting")
    policy = data / "policy.toml"
    text = (ROOT / "shared" / "policy.toml").read_text(encoding="utf-8")
    assert "grid_worker = false" in text
    policy.write_text(text.replace("grid_worker = false", "grid_worker = true", 1), encoding="utf-8")
    site = Site(data, env={"GRIDCASE_POLICY_FILE": str(policy)})
    try:
        yield site.start()
    finally:
        site.stop()
        site.gateway.close()


def test_a_refused_report_says_why_in_chinese_on_the_phone_and_in_english_when_switched(browser, accepting):
    site = accepting
    place = site.grid(0)
    worker = site.token("grid_worker", area=place["grid"], user="worker-refused")
    report = site.report(worker, place, "路灯不亮，在桥边")
    act(site, report["id"], site.token("command", user="command-refuses"), "refuse",
        reason="insufficient_information", note="没有门牌号")
    wait_for(lambda: requests.get(f"{site.url}/intake/v1/reports/{report['id']}", headers=auth(worker),
                                  timeout=10).json()["status"] == "refused", timeout=10, message="refused")

    context, page, problems = phone(browser, site, place, "worker-refused", "zh")
    item = page.locator(f"#mine-list li[data-report='{report['id']}']")
    expect(item).to_contain_text("不予立案")
    expect(item).to_contain_text("信息不足：没有门牌号")
    item.scroll_into_view_if_needed()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SCREENSHOTS / "app-phone-refused-zh.png")
    assert not axe_violations(page)

    page.click("[data-lang-switch]")  # the list is read again in the page's new language
    expect(item).to_contain_text("too little information: 没有门牌号")
    expect(page.locator("#verify-list")).to_contain_text("No case awaits your verification")  # every list
    item.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "app-phone-refused-en.png")
    assert not problems
    context.close()


def test_the_sent_reports_banner_follows_the_language_switch_with_the_servers_reason_for_a_photo(browser, site, place):
    """The line that says what became of a report ("已上报，案卷号 …", and why the server refused its photo)
    is said again in the page's new language when the language is switched: the page's words from its
    catalogue, the server's reason from the server, asked again in the new language."""
    context, page, problems = phone(browser, site, place, "worker-banner", "zh")
    message = page.locator("#message")
    page.fill("#r-description", "banner: 路灯不亮")
    page.click("#submit")
    expect(message).to_contain_text("已上报，案卷号", timeout=15000)
    number = CASE_NUMBER.search(message.inner_text()).group(0)
    page.click("[data-lang-switch]")
    expect(message).to_have_text(f"Reported: case number {number}")

    page.fill("#r-description", "banner: a refused photo")
    page.set_input_files("#r-photo", files=[{"name": "photo.jpg", "mimeType": "image/jpeg",
                                             "buffer": b"#!/bin/sh\necho not a photo\n"}])
    page.click("#submit")
    expect(message).to_contain_text("the server refused the photo: not a JPEG or PNG", timeout=15000)
    number = CASE_NUMBER.search(message.inner_text()).group(0)
    with page.expect_response(lambda r: r.url.endswith("/photos") and r.request.method == "POST") as asked:
        page.click("[data-lang-switch]")
    assert asked.value.status == 415 and asked.value.request.headers["accept-language"].startswith("zh")
    expect(message).to_have_text(f"已上报，案卷号 {number}；但照片被服务器拒绝：不是 JPEG 或 PNG 图片")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert not problems
    context.close()
