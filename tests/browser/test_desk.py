"""The supervisor's desk against closure-time statistics: an honest "not available" while the server has
no statistics endpoint, the charts, ranking and table from an answer in the documented contract
(GET /escalation/v1/stats/closure-times), and the CSV download equal to the API's CSV."""
from __future__ import annotations

import json
from pathlib import Path

import requests
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, SCREENSHOTS, WALL, open_page
from tests.support.system import auth, wait_for_case

STATS = "/escalation/v1/stats/closure-times"


def timing(median, p90):
    return {"median": median, "p90": p90}


def row(area_id, name, period, opened, closed, on_time, rework):
    return {"area_id": area_id, "area_name": name, "period_start": period, "opened": opened, "closed": closed,
            "closure_rate": closed / opened, "on_time_rate": on_time,
            "on_time_rate_with_extensions": min(1, on_time + .05),
            "rework_rate": rework, "extension_rate": .1, "escalation_rate": .2, "overdue": opened - closed,
            "time_to_acknowledge": timing(900, 3600), "time_to_resolve": timing(14400, 43200),
            "time_to_close": timing(28800, 86400), "time_at_level": {"1": timing(3600, 7200)}}


SAMPLE = {"group_by": "station", "period": "month", "from": "2026-09-01", "to": "2026-11-30",
          "time_zone": "Asia/Shanghai",
          "rows": [row("SC01-ST01", "第1工作站", "2026-11-01", 40, 36, .9, .05),
                   row("SC01-ST02", "第2工作站", "2026-11-01", 30, 24, .7, .15),
                   row("SC01-ST03", "第3工作站", "2026-11-01", 20, 19, .95, None),
                   row("SC01-ST01", "第1工作站", "2026-10-01", 35, 30, .8, .1)]}
SAMPLE_CSV = "area_id,period_start,opened,closed\nSC01-ST01,2026-11-01,40,36\n"


def desk_answering(browser, site, rows, *, viewport=WALL, locale="en-US"):
    """A supervisor's desk whose statistics query is answered with ``SAMPLE`` holding ``rows``:
    (context, page), the page ready."""
    context = browser.new_context(viewport=viewport, locale=locale)
    context.route(f"**{STATS}?*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({**SAMPLE, "rows": rows}, ensure_ascii=False)))
    page = context.new_page()
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    return context, page


def test_the_desk_says_statistics_are_not_available_when_the_server_has_none(browser, site):
    """A gateway in front of an escalation without the statistics endpoint answers 404: the desk says so
    (the answer is made in the browser; this server has the endpoint)."""
    context = browser.new_context(viewport=WALL, locale="en-US")
    context.route(f"**{STATS}?*", lambda route: route.fulfill(
        status=404, content_type="application/problem+json",
        body=json.dumps({"type": "about:blank", "title": "Not Found", "status": 404})))
    page = context.new_page()
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#stats-status")).to_contain_text("does not offer closure-time statistics yet")
    expect(page.locator("#stats-body")).to_be_hidden()
    context.close()


def test_the_desk_draws_charts_a_ranking_and_a_table_from_the_documented_contract_and_downloads_its_csv(browser, site):
    context = browser.new_context(viewport=WALL, locale="zh-CN", accept_downloads=True)

    def answer(route):
        csv = "format=csv" in route.request.url
        route.fulfill(status=200, content_type="text/csv" if csv else "application/json",
                      body=SAMPLE_CSV if csv else json.dumps(SAMPLE, ensure_ascii=False))

    context.route(f"**{STATS}?*", answer)
    page = context.new_page()
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#stats-body")).to_be_visible()
    assert page.locator("#table tbody tr").count() == 4
    # the latest period, ranked by on-time closure rate, best first
    assert page.locator("#ranking tbody td:nth-child(2)").all_inner_texts() == ["第3工作站", "第1工作站", "第2工作站"]
    page.select_option("#rank-by", "rework_rate")  # lower is better; a unit with no rate is left out
    assert page.locator("#ranking tbody td:nth-child(2)").all_inner_texts() == ["第1工作站", "第2工作站"]
    assert page.evaluate("Chart.getChart('chart-rates').data.labels") == ["第1工作站", "第2工作站", "第3工作站"]
    page.wait_for_timeout(200)
    page.screenshot(path=SCREENSHOTS / "desk-wall-zh-contract-sample.png")
    with page.expect_download() as download:
        page.click("#csv")
    assert download.value.suggested_filename.endswith(".csv")
    assert open(download.value.path(), encoding="utf-8").read() == SAMPLE_CSV
    context.close()


def test_a_supervisor_downloads_a_csv_equal_to_the_apis(browser, site, place):
    filed = site.report(site.token("grid_worker", area=place["grid"], user="desk-worker"), place, "a case to count")
    wait_for_case(site.url, filed["id"], site.token("admin"))
    context, page, problems = open_page(browser, site, "/desk/", site.token("supervisor"), accept_downloads=True)
    expect(page.locator("#stats-body")).to_be_visible()
    query = page.evaluate("new URLSearchParams(new FormData(document.getElementById('query'))).toString()")
    expected = requests.get(f"{site.url}{STATS}?{query}&format=csv", headers=auth(site.token("supervisor")),
                            timeout=10)
    assert expected.status_code == 200, expected.text
    with page.expect_download() as download:
        page.click("#csv")
    assert Path(download.value.path()).read_bytes() == expected.content
    assert not problems
    context.close()


REPLAY = {"from": "2026-09-01", "to": "2026-12-01", "rows": [
    {"unit": "SC01-ST01", "category": "street_light", "cases": 12,
     "current": {"escalations": {"1": 3, "2": 0, "3": 0}, "overdue": 0, "closed_on_time": 9},
     "new": {"escalations": {"1": 5, "2": 1, "3": 0}, "overdue": 1, "closed_on_time": 7}}],
    "total": {"cases": 12, "current": {"escalations": {"1": 3, "2": 0, "3": 0}, "overdue": 0, "closed_on_time": 9},
              "new": {"escalations": {"1": 5, "2": 1, "3": 0}, "overdue": 1, "closed_on_time": 7}}}


def test_the_what_if_replay_sends_the_chosen_policy_file_and_shows_both_policies_side_by_side(browser, site):
    context = browser.new_context(viewport=WALL, locale="en-US")
    sent = []

    def answer(route):
        if route.request.method != "POST":  # the running policy's limits, from the server
            route.fallback()
            return
        sent.append(route.request.post_data_json)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(REPLAY))

    context.route("**/escalation/v1/stats/replay", answer)
    page = context.new_page()
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    page.check("#replay-form input[name=mode][value=file]")
    page.set_input_files("#replay-file", files=[{"name": "faster.toml", "mimeType": "text/plain",
                                                 "buffer": b"[categories.street_light]\n"}])
    page.click("#replay-form button[type=submit]")
    expect(page.locator("#replay-table")).to_contain_text("Escalated from level 1")
    rows = page.locator("#replay-table tbody tr").all_inner_texts()
    assert [r.split("\t") for r in rows][:2] == [["Cases", "12", "12"], ["Escalated from level 1", "3", "5"]]
    assert sent[0]["policy"] == "[categories.street_light]\n" and set(sent[0]) == {"policy", "from", "to"}
    expect(page.locator("#replay-rows")).to_contain_text("Broken street light")
    context.close()


def test_the_default_range_holds_the_citys_today_when_its_date_is_ahead_of_utc(browser, site):
    """At 16:30 UTC on 30 November it is already 1 December in Shanghai (UTC+8): a case filed then is dated
    the 1st, and the desk's default range (last day excluded) must still hold it. Found when the CSV test
    failed at that hour."""
    context = browser.new_context(viewport=WALL, locale="en-US")
    page = context.new_page()
    page.clock.set_fixed_time("2026-11-30T16:30:00Z")
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#q-to") > "2026-12-01", "the excluded last day comes after the city's today"
    assert page.input_value("#q-from") <= "2026-09-01", "about three months back"
    context.close()


def test_the_ranking_shares_ranks_says_when_it_is_empty_and_short_times_read_in_seconds(browser, site):
    """Found in a new user's trial: before any case closed the default ranking (on-time rate) was an empty
    table with no word, a 16-second time read "0 min", and equal values got different ranks."""
    def open_only(area_id, name, rework):  # nothing closed yet: no on-time rate
        return {**row(area_id, name, "2026-11-01", 10, 5, 0, rework), "on_time_rate": None}
    rows = [{**open_only("SC01-ST01", "第1工作站", .1), "time_to_acknowledge": timing(16, 40)},
            open_only("SC01-ST02", "第2工作站", .1), open_only("SC01-ST03", "第3工作站", .3)]
    context, page = desk_answering(browser, site, rows)
    expect(page.locator("#ranking tbody")).to_contain_text("No value for this measure")
    page.select_option("#rank-by", "rework_rate")  # lower is better: two share the first place
    assert page.locator("#ranking tbody td:nth-child(1)").all_inner_texts() == ["1", "1", "3"]
    assert "16 s" in page.locator("#table tbody tr").first.inner_text()
    context.close()


def test_the_rankings_caption_names_each_measure_once_in_chinese(browser, site):
    """Found in a new user's trial: ranked by the on-time rate (按期结案率), the caption read
    "按按期结案率…排名" — the measure's own 按 after the caption's. It names the measure as the selector does."""
    context, page = desk_answering(browser, site, SAMPLE["rows"], locale="zh-CN")
    caption = page.locator("#ranking-caption")
    expect(caption).to_have_text("排名依据：按期结案率（各级均未超时），2026-11-01起的周期")
    for measure in page.locator("#rank-by option").evaluate_all("options => options.map(o => o.value)"):
        page.select_option("#rank-by", measure)
        label = page.locator(f"#rank-by option[value={measure}]").inner_text()
        expect(caption).to_contain_text(f"：{label}，")
        assert "按按" not in caption.inner_text()
    context.close()


def test_charts_with_nothing_to_draw_say_so_and_a_period_date_never_breaks(browser, site):
    """Found in a new user's trial: with 10⁴ open cases and none closed, both charts were bare axes with no
    word; on a phone the table's period broke as "2026-" over "12-01"."""
    none_closed = [{**row(area_id, name, "2026-11-01", 10, 0, 0, 0), "on_time_rate": None, "rework_rate": None,
                    "on_time_rate_with_extensions": None, "time_to_close": timing(None, None)}
                   for area_id, name in (("SC01-ST01", "第1工作站"), ("SC01-ST02", "第2工作站"))]
    context, page = desk_answering(browser, site, none_closed, viewport=PHONE, locale="zh-CN")
    for chart in ("rates", "times", "trend"):  # the trend shows the on-time rate by default
        expect(page.locator(f"#chart-{chart}-empty")).to_be_visible()
        expect(page.locator(f"#chart-{chart}-empty")).to_have_text("本期尚无可画的数值（如尚无案卷结案）。")
    date = page.locator("#table tbody td.date").first
    expect(date).to_have_text("2026-11-01")
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#table td.date')).lineHeight)"
                         " || 1.5 * parseFloat(getComputedStyle(document.querySelector('#table td.date')).fontSize)")
    text_height = date.evaluate("cell => { const r = document.createRange(); r.selectNodeContents(cell);"
                                " return r.getBoundingClientRect().height; }")
    assert text_height < 1.5 * line, f"the period takes {text_height} px, a line is {line} px"
    context.close()
    context, page = desk_answering(browser, site, SAMPLE["rows"])
    for chart in ("rates", "times", "trend"):
        expect(page.locator(f"#chart-{chart}-empty")).to_be_hidden()
    context.close()


def test_on_a_phone_in_chinese_a_units_name_and_the_headings_do_not_break_after_every_character(browser, site):
    """Found in a new user's trial: on a 360 px phone the table's unit column was one character wide, so
    "第1分中心第1工作站" stood one character a line; the headings broke the same way. The table scrolls
    sideways instead."""
    rows = [{**r, "area_name": "第1分中心第" + r["area_name"][1:]} for r in SAMPLE["rows"]]
    context, page = desk_answering(browser, site, rows, viewport=PHONE, locale="zh-CN")
    expect(page.locator("#table tbody tr").first).to_be_visible()
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#table td')).lineHeight)"
                         " || 1.5 * parseFloat(getComputedStyle(document.querySelector('#table td')).fontSize)")
    for selector in ("#table tbody td.group", "#ranking tbody td.group", "#table thead th", "#ranking thead th"):
        tallest = max(page.locator(selector).evaluate_all("cells => cells.map(c => c.clientHeight)"))
        assert tallest <= 3 * line + 16, f"{selector}: {tallest} px high, {line} px a line"
    context.close()


def test_the_monthly_review_by_closing_month_asks_for_it_and_names_both_on_time_rates(browser, site, place):
    """The desk counts the cases closed in each month (考核) when asked, and shows the on-time rate against
    the final deadline beside the one never late at any level, and calendar time beside working time."""
    filed = site.report(site.token("grid_worker", area=place["grid"], user="review-worker"), place, "to review")
    wait_for_case(site.url, filed["id"], site.token("admin"))
    context, page, problems = open_page(browser, site, "/desk/", site.token("supervisor"))
    expect(page.locator("#stats-body")).to_be_visible()
    page.select_option("#q-by", "closed")
    with page.expect_response(lambda r: STATS in r.url and "by=closed" in r.url and r.status == 200):
        page.click("#query button[type=submit]")
    headings = page.locator("#table thead th").all_text_contents()  # the page is in Chinese
    assert "按最终时限结案率" in headings and "按期结案率（各级均未超时）" in headings
    assert "在第2级日历用时（中位数）" in headings
    query = page.evaluate("new URLSearchParams(new FormData(document.getElementById('query'))).toString()")
    csv = requests.get(f"{site.url}{STATS}?{query}&format=csv", headers=auth(site.token("supervisor")), timeout=10)
    assert csv.status_code == 200 and "by=closed" in query
    header = csv.content.decode("utf-8-sig").splitlines()[0].split(",")  # named in the reader's language
    assert {"按最终时限结案率", "工作站级停留日历用时中位数（小时）"} <= set(header)
    assert not problems
    context.close()
