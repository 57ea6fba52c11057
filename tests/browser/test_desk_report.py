"""The supervisor's desk as a report: the trend of each measure over the periods, the ranking by unit
name, the what-if replay from a form (the limits of chosen categories and levels, checked by the server,
its problems shown next to the field they name) and the printed report (its header, charts and tables,
no form controls). At 1366×768 and 1920×1080 in both languages, the form also at 360×740; screenshots
in docs/screenshots; axe-core with no serious or critical violation."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, SCREENSHOTS, WALL, axe_violations, open_page
from tests.support.system import auth, wait_for_case

STATS = "/escalation/v1/stats/closure-times"
REPLAY = "/escalation/v1/stats/replay"
LAPTOP = {"width": 1366, "height": 768}
SIZES = {"1366": LAPTOP, "1920": WALL, "phone": PHONE}
PERIODS = ["2026-09-01", "2026-10-01", "2026-11-01"]


def timing(median, p90):
    return {"median": median, "p90": p90}


def row(number: int, period: str, opened: int, on_time: float | None) -> dict:
    return {"area_id": f"SC01-ST0{number}", "area_name": f"第{number}工作站", "period_start": period,
            "opened": opened, "closed": opened - 2, "closure_rate": (opened - 2) / opened, "on_time_rate": on_time,
            "on_time_rate_with_extensions": on_time, "on_time_rate_final": on_time, "rework_rate": .05,
            "extension_rate": .1, "escalation_rate": .2, "overdue": 1, "time_to_acknowledge": timing(900, 3600),
            "time_to_resolve": timing(3600 * number, 7200 * number),
            "time_to_close": timing(3600 * (number + months(period)), 86400), "time_at_level": {}}


def months(period: str) -> int:
    return PERIODS.index(period)


# six stations over three months, the sixth the quietest; the third has no cases in October
TREND_ROWS = [row(n, p, 10 * (7 - n) + months(p), .6 + .1 * months(p) - .02 * n)
              for n in range(1, 7) for p in PERIODS if not (n == 3 and p == "2026-10-01")]
SAMPLE = {"group_by": "station", "period": "month", "by": "opened", "from": "2026-09-01", "to": "2026-12-01",
          "time_zone": "Asia/Shanghai", "rows": TREND_ROWS}


def desk_with_sample(browser, site, viewport, locale):
    """The desk whose statistics query is answered with ``SAMPLE`` (the answer made in the browser):
    (context, page)."""
    context = browser.new_context(viewport=viewport, locale=locale)
    context.route(f"**{STATS}?*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(SAMPLE, ensure_ascii=False)))
    page = context.new_page()
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#stats-body")).to_be_visible()
    return context, page


def messages(lang: str) -> dict:
    from tests.browser.conftest import ROOT_PAGES
    return json.loads((ROOT_PAGES["desk"] / "messages.json").read_text(encoding="utf-8"))[lang]


def chart(page, canvas: str, expression: str):
    return page.evaluate(f"Chart.getChart('{canvas}').{expression}")


@pytest.mark.parametrize("size,lang", [("1366", "en"), ("1366", "zh"), ("1920", "en"), ("1920", "zh"), ("phone", "zh")])
def test_a_trend_line_per_unit_follows_each_measure_over_the_periods(browser, site, size, lang):
    t = messages(lang)
    context, page = desk_with_sample(browser, site, SIZES[size], "zh-CN" if lang == "zh" else "en-US")
    assert chart(page, "chart-trend", "data.labels") == PERIODS
    # the five busiest units over the range by default (the third had no cases in October), by name; the
    # quietest is offered, not drawn
    assert chart(page, "chart-trend", "data.datasets.map(d => d.label)") == [f"第{n}工作站" for n in (1, 2, 4, 3, 5)]
    expect(page.locator("#trend-units")).to_contain_text("第6工作站")
    first = chart(page, "chart-trend", "data.datasets[0].data")
    assert first == [58.0, 68.0, 78.0], "on-time rate in %, one point a month"
    assert chart(page, "chart-trend", "data.datasets[3].data")[1] is None, "no cases in October: a gap, not 0"
    expect(page.locator("#trend-caption")).to_contain_text(t["col_on_time_rate"])

    page.select_option("#trend-measure", "time_to_close")  # a time: the median in hours
    assert chart(page, "chart-trend", "data.datasets[0].data") == [1.0, 2.0, 3.0]
    expect(page.locator("#trend-caption")).to_contain_text(t["col_time_to_close_median"])
    options = page.locator("#trend-measure option").evaluate_all("os => os.map(o => o.value)")
    assert {"on_time_rate", "on_time_rate_final", "closure_rate", "rework_rate", "overdue", "opened",
            "time_to_acknowledge", "time_to_resolve"} <= set(options)
    page.select_option("#trend-measure", "overdue")
    assert chart(page, "chart-trend", "data.datasets[0].data") == [1, 1, 1]

    page.locator("#trend-units label", has_text="第2工作站").locator("input").uncheck()
    page.locator("#trend-units label", has_text="第6工作站").locator("input").check()
    labels = chart(page, "chart-trend", "data.datasets.map(d => d.label)")
    assert "第2工作站" not in labels and "第6工作站" in labels
    page.select_option("#trend-measure", "on_time_rate")
    if size == "phone":
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scroll"
    page.wait_for_timeout(100)
    page.locator("section.trend").screenshot(path=SCREENSHOTS / f"desk-{size}-{lang}-trend.png")
    assert axe_violations(page) == []
    context.close()


def test_a_trend_of_counts_has_whole_numbers_on_its_axis(browser, site):
    """Found in a new user's trial: the trend of cases opened (新增) in a quiet month read 0.5 and 1.5 cases
    on its axis. A count's axis steps in whole cases; a time's is as it was."""
    quiet = [{**row(1, p, 3, .5), "opened": opened, "closed": closed, "overdue": overdue}
             for p, opened, closed, overdue in zip(PERIODS, (1, 2, 1), (0, 1, 2), (1, 1, 1), strict=True)]
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN")
    context.route(f"**{STATS}?*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({**SAMPLE, "rows": quiet}, ensure_ascii=False)))
    page = context.new_page()
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#stats-body")).to_be_visible()
    for measure, drawn in (("opened", [1, 2, 1]), ("closed", [0, 1, 2]), ("overdue", [1, 1, 1])):
        page.select_option("#trend-measure", measure)
        assert chart(page, "chart-trend", "data.datasets[0].data") == drawn
        ticks = chart(page, "chart-trend", "scales.y.ticks.map(t => t.value)")
        assert len(ticks) >= 2 and all(float(v).is_integer() for v in ticks), f"{measure}: {ticks}"
    page.select_option("#trend-measure", "time_to_close")  # hours: a fraction of one is a time
    assert chart(page, "chart-trend", "options.scales.y.ticks.precision") is None
    context.close()


def test_the_ranking_and_the_replay_name_units_by_the_apis_names(browser, site, place):
    """The statistics' and the replay's rows carry each unit's name beside its id, and the ranking shows
    the name (before, a station was its id unless dispatch's area list was fetched as well)."""
    admin = site.token("admin")
    filed = site.report(site.token("grid_worker", area=place["grid"], user="rank-worker"), place, "to rank")
    wait_for_case(site.url, filed["id"], admin)
    stations = requests.get(f"{site.url}/dispatch/v1/areas", params={"level": "station"}, headers=auth(admin),
                            timeout=30).json()["features"]
    name = next(f["properties"]["name"] for f in stations if f["properties"]["id"] == place["station"])
    context = browser.new_context(viewport=LAPTOP, locale="en-US")
    # dispatch's station list answers no station here: the names can only come with the statistics
    context.route("**/dispatch/v1/areas?level=station*", lambda route: route.fulfill(
        status=200, content_type="application/json", body='{"type": "FeatureCollection", "features": []}'))
    page = context.new_page()
    with page.expect_response(lambda r: STATS in r.url and r.status == 200) as answer:
        page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    rows = answer.value.json()["rows"]
    assert {r["area_name"] for r in rows if r["area_id"] == place["station"]} == {name}
    page.select_option("#rank-by", "overdue")  # a count: every unit has one before any case closes
    expect(page.locator("#ranking tbody")).to_contain_text(name)
    assert place["station"] not in page.locator("#ranking tbody").inner_text()
    context.close()


def limits_of(site) -> dict:
    answer = requests.get(f"{site.url}{REPLAY}", headers=auth(site.token("supervisor")), timeout=10)
    assert answer.status_code == 200, answer.text
    return {c["code"]: c for c in answer.json()["categories"]}


def test_the_replay_offers_the_running_policys_limits_each_in_its_own_unit(site, place):
    limits = limits_of(site)
    street = limits["street_light"]
    assert street["severity"] == "normal" and street["en"] == "Broken street light"
    assert street["rules"]["normal"] == {"start_level": 1, "limits": {
        "1": {"amount": 4.0, "unit": "working_hours"}, "2": {"amount": 8.0, "unit": "working_hours"},
        "3": {"amount": 3.0, "unit": "working_days"}, "4": {"amount": 5.0, "unit": "working_days"}}}
    assert street["rules"]["urgent"]["limits"]["1"] == {"amount": 1.0, "unit": "hours"}
    hazard = limits["safety_hazard"]["rules"]["urgent"]
    assert hazard["start_level"] == 3 and set(hazard["limits"]) == {"3", "4"}, "levels below the start are never used"
    worker = site.token("grid_worker", area=place["grid"])
    grid_worker = requests.get(f"{site.url}{REPLAY}", headers=auth(worker), timeout=10)
    assert grid_worker.status_code == 403


def change(**overrides) -> dict:
    return {"category": "street_light", "severity": "normal", "level": 1, "amount": 6, "unit": "working_hours",
            **overrides}


@pytest.mark.parametrize("body,field,words", [
    ({"changes": [change(category="no_such")]}, "changes.0.category", "no category 'no_such'"),
    ({"changes": [change(severity="slow")]}, "changes.0.severity", "not a severity"),
    ({"changes": [change(), change(level=3, amount=400, unit="working_days")]}, "changes.1.amount",
     "longer than a year"),
    ({"changes": [change(amount=0)]}, "changes.0.amount", "greater than 0"),
    ({"changes": [change(amount="6")]}, "changes.0.amount", ""),
    ({"changes": [change(unit="fortnights")]}, "changes.0.unit", "working_hours"),
    ({"changes": [change(level=5)]}, "changes.0.level", ""),
    ({"changes": [change(category="safety_hazard", severity="urgent", level=2)]}, "changes.0.level",
     "never used"),
    ({"changes": [change(), change(amount=8)]}, "changes.1.level", "same category"),
    ({"changes": [change(extra=1)]}, "changes.0.extra", ""),
    ({"changes": []}, "changes", ""),
    ({}, "policy", "either"),
    ({"policy": "version = 1\n", "changes": [change()]}, "changes", "either"),
])
def test_a_change_the_server_cannot_apply_is_a_problem_naming_its_field(site, body, field, words):
    answer = requests.post(f"{site.url}{REPLAY}", json={"from": "2026-09-01", "to": "2026-12-01", **body},
                           headers=auth(site.token("supervisor")), timeout=10)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problems = {e["field"]: e["detail"] for e in answer.json()["errors"]}
    assert field in problems and words in problems[field], problems


def test_limit_changes_replay_the_running_policy_with_those_limits(site, place):
    """A change that shortens level 1 to a minute makes every case still at level 1 after a minute an
    escalation under the new policy; the current side is the cases' own. The unit's name is in each row."""
    filed = site.report(site.token("grid_worker", area=place["grid"], user="replay-worker"), place, "replayed")
    wait_for_case(site.url, filed["id"], site.token("admin"))
    body = {"from": "2026-01-01", "to": "2027-01-01",
            "changes": [change(level=1, amount=1, unit="seconds"), change(level=2, amount=1, unit="seconds"),
                        change(level=3, amount=1, unit="seconds")]}
    time.sleep(1.5)  # the new limits of 1 s each have passed at every level by now
    answer = requests.post(f"{site.url}{REPLAY}", json=body, headers=auth(site.token("supervisor")), timeout=30)
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json()["rows"] if r["unit"] == place["station"] and r["category"] == "street_light"]
    assert rows and rows[0]["unit_name"] and rows[0]["unit_name"] != place["station"]
    new, current = rows[0]["new"]["escalations"]["1"], rows[0]["current"]["escalations"]["1"]
    assert new >= 1 and new > current


def open_replay(browser, site, size, lang):
    context, page, problems = open_page(browser, site, "/desk/", site.token("supervisor"), lang=lang,
                                        viewport=SIZES[size])
    page.locator("#replay-title").scroll_into_view_if_needed()
    return context, page, problems


def choose(page, *names):
    for name in names:
        page.locator("#replay-category-list label", has_text=name).locator("input").check()


@pytest.mark.parametrize("size,lang", [("1366", "en"), ("1366", "zh"), ("1920", "en"), ("1920", "zh"),
                                       ("phone", "zh"), ("phone", "en")])
def test_the_replay_form_builds_limit_changes_in_each_limits_own_unit(browser, site, place, size, lang):
    filed = site.report(site.token("grid_worker", area=place["grid"], user=f"form-{size}-{lang}"), place, "form")
    wait_for_case(site.url, filed["id"], site.token("admin"))
    t = messages(lang)
    context, page, problems = open_replay(browser, site, size, lang)
    choose(page, "路灯损坏" if lang == "zh" else "Broken street light")
    expect(page.locator("#replay-level-1-now")).to_have_text(t["replay_now"].replace(
        "{limit}", t["limit_working_hours"].replace("{n}", "4")))
    assert page.input_value("#replay-unit-1") == "working_hours"
    assert page.input_value("#replay-unit-3") == "working_days"
    choose(page, "安全隐患" if lang == "zh" else "Safety hazard")  # starts at the sub-center (in the urgent rule)
    page.select_option("#replay-severity", "urgent")
    assert page.input_value("#replay-unit-1") == "hours", "the urgent rule's limits are hours around the clock"
    expect(page.locator("#replay-level-3-now")).to_contain_text("2")
    page.select_option("#replay-severity", "normal")
    page.fill("#replay-amount-1", "2")
    page.fill("#replay-amount-3", "1.5")
    with page.expect_request(lambda r: r.url.endswith(REPLAY) and r.method == "POST") as sent:
        page.click("#replay-form button[type=submit]")
    changes = sent.value.post_data_json["changes"]
    hazard_start = limits_of(site)["safety_hazard"]["rules"]["normal"]["start_level"]
    expected = [{"category": "street_light", "severity": "normal", "level": 1, "amount": 2, "unit": "working_hours"},
                {"category": "street_light", "severity": "normal", "level": 3, "amount": 1.5, "unit": "working_days"}]
    expected += [{"category": "safety_hazard", "severity": "normal", "level": n, "amount": a, "unit": u}
                 for n, a, u in ((1, 2, "working_hours"), (3, 1.5, "working_days")) if n >= hazard_start]
    assert sorted(changes, key=json.dumps) == sorted(expected, key=json.dumps)
    expect(page.locator("#replay-table")).to_be_visible()
    expect(page.locator("#replay-caption")).to_contain_text("2")
    expect(page.locator("#replay-error")).to_have_text("")
    page.locator("#replay-result").scroll_into_view_if_needed()
    page.wait_for_timeout(100)
    page.locator("#replay").screenshot(path=SCREENSHOTS / f"desk-{size}-{lang}-replay.png")
    if size == "phone":
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scroll"
    assert axe_violations(page) == []
    assert not problems
    context.close()


@pytest.mark.parametrize("size,lang", [("1366", "en"), ("1920", "zh"), ("phone", "zh")])
def test_the_servers_problems_are_shown_next_to_the_field_they_name(browser, site, size, lang):
    context, page, problems = open_replay(browser, site, size, lang)
    page.click("#replay-form button[type=submit]")  # nothing chosen: the form says what is missing
    expect(page.locator("#replay-category-error")).to_have_text(messages(lang)["replay_choose_category"])
    choose(page, "路灯损坏" if lang == "zh" else "Broken street light")
    expect(page.locator("#replay-category-error")).to_have_text(messages(lang)["replay_choose_category"])
    page.fill("#replay-amount-1", "2")
    page.fill("#replay-to", "2025-01-01")  # before from
    with page.expect_response(lambda r: r.url.endswith(REPLAY) and r.request.method == "POST") as answer:
        page.click("#replay-form button[type=submit]")
    assert answer.value.status == 422
    expect(page.locator("#replay-to-error")).to_contain_text("须晚于起始日期" if lang == "zh" else "after from")
    expect(page.locator("#replay-category-error")).to_be_hidden()
    assert page.get_attribute("#replay-to", "aria-invalid") == "true"
    page.fill("#replay-to", page.input_value("#q-to"))
    page.fill("#replay-amount-1", "-2")  # the schema's check, before the policy's
    page.click("#replay-form button[type=submit]")
    # the validation library's words, in the page's language
    expect(page.locator("#replay-level-1-error")).to_contain_text("须大于 0" if lang == "zh" else "greater than 0")
    assert page.get_attribute("#replay-level-1-error", "data-problem-field") == "changes.0.amount"
    expect(page.locator("#replay-to-error")).to_be_hidden()
    page.fill("#replay-amount-1", "2")
    page.fill("#replay-amount-3", "400")  # working days: more than a year
    page.click("#replay-form button[type=submit]")
    # the server's own words, in the page's language
    expect(page.locator("#replay-level-3-error")).to_contain_text("超过一年" if lang == "zh" else "longer than a year")
    assert page.get_attribute("#replay-level-3-error", "data-problem-field") == "changes.1.amount"
    assert page.get_attribute("#replay-amount-3", "aria-invalid") == "true"
    assert page.get_attribute("#replay-amount-1", "aria-invalid") is None
    expect(page.locator("#replay-level-1-error")).to_be_hidden()
    expect(page.locator("#replay-level-2-error")).to_be_hidden()
    expect(page.locator("#replay-error")).to_have_text(messages(lang)["replay_failed"])
    expect(page.locator("#replay-result")).to_be_empty()
    page.locator("#replay-categories").scroll_into_view_if_needed()
    page.wait_for_timeout(100)
    page.locator("#replay").screenshot(path=SCREENSHOTS / f"desk-{size}-{lang}-replay-problems.png")
    assert axe_violations(page) == []
    assert not problems
    context.close()


@pytest.mark.parametrize("size,lang", [("1366", "en"), ("phone", "zh")])
def test_a_replay_that_fails_leaves_no_earlier_answer_under_its_problems(browser, site, place, size, lang):
    """After one replay has answered, a second whose values the server refuses shows its problems and
    nothing else: the earlier answer (its caption and tables) is gone, not left under "did not run"."""
    filed = site.report(site.token("grid_worker", area=place["grid"], user=f"stale-{size}-{lang}"), place, "stale")
    wait_for_case(site.url, filed["id"], site.token("admin"))
    context, page, problems = open_replay(browser, site, size, lang)
    choose(page, "路灯损坏" if lang == "zh" else "Broken street light")
    page.fill("#replay-amount-1", "2")
    with page.expect_response(lambda r: r.url.endswith(REPLAY) and r.request.method == "POST") as answer:
        page.click("#replay-form button[type=submit]")
    assert answer.value.status == 200
    expect(page.locator("#replay-table")).to_be_visible()
    expect(page.locator("#replay-caption")).not_to_be_empty()
    page.fill("#replay-amount-1", "-3")
    with page.expect_response(lambda r: r.url.endswith(REPLAY) and r.request.method == "POST") as answer:
        page.click("#replay-form button[type=submit]")
    assert answer.value.status == 422
    expect(page.locator("#replay-level-1-error")).to_contain_text("须大于 0" if lang == "zh" else "greater than 0")
    expect(page.locator("#replay-error")).to_have_text(messages(lang)["replay_failed"])
    expect(page.locator("#replay-result")).to_be_empty()
    expect(page.locator("#replay-caption")).to_be_empty()
    expect(page.locator("#replay-table")).to_have_count(0)
    page.click("[data-lang-switch]")  # the other language redraws no forgotten answer
    expect(page.locator("#replay-result")).to_be_empty()
    expect(page.locator("#replay-caption")).to_be_empty()
    assert not problems
    context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_policy_file_is_still_replayed_whole(browser, site, lang):
    context, page, problems = open_replay(browser, site, "1366", lang)
    page.check("#replay-form input[name=mode][value=file]")
    expect(page.locator("#replay-limits")).to_be_hidden()
    page.set_input_files("#replay-file", files=[{"name": "broken.toml", "mimeType": "text/plain",
                                                 "buffer": b"version = 1\n[[categories]]\n"}])
    page.click("#replay-form button[type=submit]")
    # the server names the file's problem and its line, in the page's language
    expect(page.locator("#replay-file-error")).to_contain_text(
        "policy 第 2 行：类别需要代码（code）" if lang == "zh" else "policy:2: a category needs a code")
    assert page.get_attribute("#replay-file", "aria-invalid") == "true"
    context.close()


CONTROLS = """() => Array.from(document.querySelectorAll('input, select, button, textarea, [role=button]'))
  .filter((el) => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null)
  .map((el) => el.outerHTML.slice(0, 80))"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_printed_report_has_its_range_and_time_zone_charts_and_tables_and_no_controls(browser, site, lang,
                                                                                           tmp_path):
    context, page = desk_with_sample(browser, site, LAPTOP, "zh-CN" if lang == "zh" else "en-US")
    assert page.evaluate(CONTROLS), "on screen the form is there"
    page.emulate_media(media="print")
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert page.evaluate(CONTROLS) == [], "no form control is printed"
    header = page.locator("#report-header")
    expect(header).to_be_visible()
    expect(header).to_contain_text("2026-09-01")
    expect(header).to_contain_text("2026-12-01")
    expect(header).to_contain_text("Asia/Shanghai")
    expect(header).to_contain_text(messages(lang)["group_station"])
    expect(page.locator("#report-printed")).to_be_visible()
    for shown in ("#chart-rates", "#chart-times", "#chart-trend", "#ranking", "#table", "#trend-caption",
                  "#ranking-caption"):
        expect(page.locator(shown)).to_be_visible()
    for hidden in ("#query", ".topbar", "#replay", "#trend-units", "#hotspot-form"):
        expect(page.locator(hidden).first).to_be_hidden()
    assert page.pdf(path=tmp_path / "desk-report.pdf", prefer_css_page_size=True).startswith(b"%PDF")
    page.screenshot(path=SCREENSHOTS / f"desk-print-{lang}.png", full_page=True)
    context.close()


def test_a_replay_is_printed_with_its_answer_and_without_its_form(browser, site):
    context, page, problems = open_replay(browser, site, "1366", "en")
    choose(page, "Broken street light")
    page.fill("#replay-amount-2", "4")
    page.click("#replay-form button[type=submit]")
    expect(page.locator("#replay-table")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("#replay-table")).to_be_visible()
    expect(page.locator("#replay-caption")).to_contain_text("Level 2 station → 4 working hours")
    expect(page.locator("#replay-form")).to_be_hidden()
    assert page.evaluate(CONTROLS) == []
    context.close()


@pytest.mark.parametrize("lang,urgent", [("en", "Urgent"), ("zh", "紧急")])
def test_severities_are_named_and_departments_trend_their_own_measures(browser, site, lang, urgent):
    """A grouping by severity names each in the page's language (a city's own severity keeps its code);
    a grouping by department offers the trend of a department's measures (assignments, not cases)."""
    severity_rows = [{**r, "severity": s, "area_id": None, "area_name": None}
                     for r, s in ((row(1, "2026-11-01", 10, .9), "urgent"), (row(2, "2026-11-01", 8, .8), "storm"))]
    department_rows = [{"department": "water", "period_start": p, "assigned": 5 + months(p), "acknowledged": 5,
                        "done": 4, "declined": 1, "on_time": 3, "overdue": 1, "on_time_rate": .75, "decline_rate": .2,
                        "time_to_accept": timing(600, 1200), "time_to_feedback": timing(7200, 14400)}
                       for p in PERIODS]
    answers = {"severity": severity_rows, "department": department_rows}
    context = browser.new_context(viewport=LAPTOP, locale="zh-CN" if lang == "zh" else "en-US")

    def answer(route):
        group_by = parse_qs(urlparse(route.request.url).query)["group_by"][0]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(
            {**SAMPLE, "group_by": group_by, "rows": answers.get(group_by, TREND_ROWS)}))

    context.route(f"**{STATS}?*", answer)
    page = context.new_page()
    page.goto(f"{site.url}/desk/#token={site.token('supervisor')}")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#q-group", "severity")
    page.click("#query button[type=submit]")
    expect(page.locator("#ranking tbody")).to_contain_text(urgent)
    assert chart(page, "chart-trend", "data.datasets.map(d => d.label)") == [urgent, "storm"]
    page.select_option("#q-group", "department")
    page.click("#query button[type=submit]")
    expect(page.locator("#trend-measure option[value=decline_rate]")).to_have_count(1)
    assert page.locator("#trend-measure option[value=closure_rate]").count() == 0
    page.select_option("#trend-measure", "assigned")
    assert chart(page, "chart-trend", "data.datasets[0].data") == [5, 6, 7]
    context.close()
