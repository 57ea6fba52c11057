"""The grid worker's phone page at 360×740: a report gets its case number at once; a report made without
network is kept, sent exactly once when the network returns, and appears on the command-center board."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests
from playwright.sync_api import expect

from tests.browser.conftest import CASE_NUMBER, PHONE, SCREENSHOTS, open_page, resolve
from tests.support.system import auth, wait_for

#: A request for one case of escalation (``GET /escalation/v1/cases/{id}``), by its path.
ONE_CASE = re.compile(r"/escalation/v1/cases/[0-9a-f-]{36}")


def phone(browser, site, place, user: str, lang: str = "zh", asked: list | None = None):
    """The phone page signed in as the grid worker ``user`` of ``place``'s grid; ``asked``: a list the paths
    of the page's requests are added to, from its first."""
    token_ = site.token("grid_worker", area=place["grid"], user=user)
    options = {"lang": lang, "viewport": PHONE, "permissions": ["geolocation"],
               "geolocation": {"latitude": place["lat"], "longitude": place["lon"], "accuracy": 12}}
    if asked is None:
        return open_page(browser, site, "/app/", token_, **options)
    # open_page's steps, with the requests counted from before the first one
    context = browser.new_context(viewport=PHONE, locale="zh-CN" if lang == "zh" else "en-US",
                                  permissions=options["permissions"], geolocation=options["geolocation"])
    context.on("request", lambda r: asked.append(urlsplit(r.url).path))
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(f"{site.url}/app/#token={token_}")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    return context, page, problems


def in_view(page, selector: str) -> bool:
    """Whether the element ``selector`` names is wholly inside the viewport (where the eye is), to the pixel
    (layout in fractions of a pixel may put an edge a fraction outside)."""
    return page.evaluate("""(selector) => {
        const r = document.querySelector(selector).getBoundingClientRect();
        return r.height > 0 && r.top > -1 && r.bottom < window.innerHeight + 1;
    }""", selector)


def cases_described(site, description: str) -> list[dict]:
    items = requests.get(f"{site.url}/escalation/v1/cases", params={"page_size": 500},
                         headers=auth(site.token("admin")), timeout=10).json()["items"]
    return [c for c in items if c["report"]["description"] == description]


def test_the_phone_page_reports_at_360_by_740_and_shows_the_case_number_at_once(browser, site, place):
    context, page, problems = phone(browser, site, place, "worker-phone")
    expect(page.locator("#location-status")).to_contain_text("12")  # the GPS accuracy, in metres
    page.select_option("#r-category", "road_damage")
    page.fill("#r-description", "路面塌陷，约一米宽")
    page.click("#submit")
    expect(page.locator("#message")).to_contain_text("案卷号")
    number = CASE_NUMBER.search(page.locator("#message").inner_text()).group(0)
    expect(page.locator("#mine-list")).to_contain_text(number)
    # the number is one word: a line never breaks it after its hyphen, in the message or in the lists
    for shown in (page.locator("#message .case-number"), page.locator("#mine-list .case-number").first):
        expect(shown).to_have_text(number)
        pieces = shown.evaluate("e => e.getClientRects().length")
        assert pieces == 1, f"{number} is laid out in {pieces} pieces: it broke across lines"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    [case] = wait_for(lambda: cases_described(site, "路面塌陷，约一米宽"), timeout=5, message="the case")
    assert case["number"] == number and case["category"] == "road_damage"
    assert abs(case["report"]["location"]["lat"] - place["lat"]) < 1e-6
    assert not problems
    context.close()


def test_a_report_made_offline_is_sent_once_when_the_network_returns_and_appears_on_the_board(browser, site, place):
    description = "offline: 井盖缺失 / a manhole cover is missing"
    context, page, problems = phone(browser, site, place, "worker-offline")
    assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    accepted = []
    page.on("response", lambda r: accepted.append(r.status) if r.request.method == "POST"
            and r.url.endswith("/intake/v1/reports") and r.ok else None)

    context.set_offline(True)
    expect(page.locator("#network")).to_have_attribute("data-online", "false")
    page.fill("#r-description", description)
    page.click("#submit")
    expect(page.locator("#message")).to_contain_text("没有网络")
    expect(page.locator("#outbox-status")).to_contain_text("1")
    page.screenshot(path=SCREENSHOTS / "app-phone-offline-zh.png")
    assert cases_described(site, description) == []

    context.set_offline(False)
    expect(page.locator("#message")).to_contain_text("已发送", timeout=15000)
    number = CASE_NUMBER.search(page.locator("#message").inner_text()).group(0)
    expect(page.locator("#outbox-status")).to_be_hidden()
    expect(page.locator("#mine-list")).to_contain_text(number)

    station = site.token("station", area=place["station"], user="board-offline")
    board_context, board, board_problems = open_page(browser, site, "/board/", station)
    expect(board.locator(f"#case-rows tr:has-text('{number}')")).to_be_visible(timeout=5000)
    page.reload()  # nothing is left to send: no second copy goes out
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#outbox-status")).to_be_hidden()
    assert accepted == [201]
    assert len(wait_for(lambda: cases_described(site, description), timeout=5, message="the case")) == 1
    assert not problems and not board_problems
    context.close()
    board_context.close()


def test_my_reports_show_the_time_left_from_the_reports_alone_with_no_request_per_case(browser, site, place):
    """"My reports" reads the worker's reports (intake follows each case's status, level and deadline) and
    asks escalation for none of their cases: not for those in the worker's grid, nor for one filed in
    another grid, which is no case of theirs to read (it would answer 404)."""
    worker = site.token("grid_worker", area=place["grid"], user="worker-mine-deadlines")
    elsewhere = site.grid(5)
    assert elsewhere["grid"] != place["grid"]
    filed = [site.report(worker, place, f"mine: 路灯不亮 {i} / lamp out {i}") for i in range(3)]
    filed.append(site.report(worker, elsewhere, "mine: 另一个网格 / in another grid"))
    followed = wait_for(lambda: all(requests.get(f"{site.url}/intake/v1/reports/{r['id']}", headers=auth(worker),
                                                 timeout=10).json()["deadline_at"] for r in filed),
                        timeout=20, message="the reports' deadlines")
    assert followed
    context, page, problems = phone(browser, site, place, "worker-mine-deadlines", lang="en", asked=(asked := []))
    for report in filed:
        item = page.locator(f"#mine-list li[data-report='{report['id']}']")
        expect(item.locator(".status")).to_have_text("Open")
        expect(item.locator(".time-left")).not_to_be_empty()
    assert not [path for path in asked if ONE_CASE.fullmatch(path)], asked
    assert not problems
    context.close()


def test_the_grid_worker_verifies_a_resolved_case_from_the_phone_and_it_closes(browser, site, place):
    worker = site.token("grid_worker", area=place["grid"], user="worker-verify")
    case = site.report(worker, place, "verify: 路灯不亮 / a lamp is out", category="other")
    station = site.token("station", area=place["station"], user="station-verify")
    resolve(site, case["id"], worker, station, note="换了灯泡 / bulb replaced")
    context, page, problems = phone(browser, site, place, "worker-verify", asked=(asked := []))
    item = page.locator(f"#verify-list li:has-text('{case['number']}')")
    expect(item).to_contain_text("换了灯泡")
    # the list says which cases are the worker's to check and what was done: no case is read one by one
    assert not [path for path in asked if ONE_CASE.fullmatch(path)], asked
    item.locator("button[value=false]").click()  # failing needs a note: the server says so
    expect(item.locator(".error")).to_contain_text("note")
    item.locator("textarea").fill("灯亮了 / the lamp is on")
    item.locator("button[value=true]").click()
    expect(page.locator("#message")).to_contain_text("核查已提交")
    closed = wait_for(lambda: requests.get(f"{site.url}/escalation/v1/cases/{case['id']}", headers=auth(worker),
                                           timeout=10).json()["status"] == "closed", timeout=5, message="closed")
    assert closed and not problems
    context.close()


def camera_jpeg(megabytes: float = 11.5) -> bytes:
    """A 4,000 × 3,000 JPEG of sensor-like noise with EXIF, about ``megabytes`` large: a phone camera's
    full-quality shot, over intake's 10 MiB."""
    import io
    import random

    from PIL import Image

    image = Image.frombytes("RGB", (4000, 3000), random.Random(1).randbytes(4000 * 3000 * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=Image.Exif().tobytes())
    assert out.tell() > megabytes * 1e6 and out.tell() > 10 * 2**20
    return out.getvalue()


def photos_of(site, report_id: str, token_: str) -> list[dict]:
    answer = requests.get(f"{site.url}/intake/v1/reports/{report_id}/photos", headers=auth(token_), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_camera_photo_over_the_server_limit_is_shrunk_on_the_phone_and_stored(browser, site, place):
    worker = site.token("grid_worker", area=place["grid"], user="worker-camera")
    context, page, problems = phone(browser, site, place, "worker-camera")
    page.fill("#r-description", "camera: 路灯杆倾斜 / a leaning lamp post")
    page.set_input_files("#r-photo", files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg",
                                             "buffer": camera_jpeg()}])
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/photos"),
                              timeout=30000) as upload:
        page.click("#submit")
    expect(page.locator("#message")).to_contain_text("案卷号", timeout=30000)
    assert "拒绝" not in page.locator("#message").inner_text()
    [case] = wait_for(lambda: cases_described(site, "camera: 路灯杆倾斜 / a leaning lamp post"), timeout=5,
                      message="the case")
    [photo] = wait_for(lambda: photos_of(site, case["id"], worker), timeout=10, message="the photo")
    assert photo["content_type"] == "image/jpeg" and photo["width"] * photo["height"] <= 16_000_000
    assert upload.value.status == 201  # within intake's 10 MiB: the 11.6 MB original would be a 413
    assert not problems
    context.close()


def test_a_photo_the_server_refuses_is_shown_with_its_reason_in_both_languages(browser, site, place):
    for lang, words, reason in (("zh", "照片被服务器拒绝", "不是 JPEG 或 PNG 图片"),
                                ("en", "the server refused the photo", "not a JPEG or PNG")):
        context, page, problems = phone(browser, site, place, f"worker-refused-{lang}", lang)
        page.fill("#r-description", f"refused photo ({lang})")
        page.set_input_files("#r-photo", files=[{"name": "photo.jpg", "mimeType": "image/jpeg",
                                                 "buffer": b"#!/bin/sh\necho not a photo\n"}])
        page.click("#submit")
        message = page.locator("#message")
        expect(message).to_contain_text(words, timeout=15000)
        expect(message).to_contain_text(reason)  # the server's reason, in the page's language
        assert CASE_NUMBER.search(message.inner_text()), "the report itself was sent: its case number is shown"
        expect(page.locator("#outbox-status")).to_be_hidden()
        assert not problems
        context.close()
