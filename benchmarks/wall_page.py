"""The wall screen with 10⁴ open cases, in Chromium (measured by hand, not part of ``make bench``): how long
after navigation its open and overdue figures show every case, how many requests it made for them, and its
long tasks (over 50 ms) until then.

    python -m benchmarks.wall_page [--cases 10000] [--runs 3] [--wall-js FILE]

``--wall-js FILE`` serves FILE as the page's wall.js (say, an earlier version: ``git show
REV:services/escalation/pages/wall/wall.js > FILE``), to compare. Set-up as ``benchmarks.board`` (``gridcase
up``, one real report as the template, the cases written straight into escalation's table, not timed); the
wall is opened by a sub-center's token at 1920×1080, a fresh context per load, after one warm-up load.
"""
from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from benchmarks._support import Scope
from benchmarks.board import CHROMIUM, VIEWPORT, crowd, embedded

LONG_TASKS = """
window.gcLong = [];
new PerformanceObserver((list) => list.getEntries().forEach((e) => window.gcLong.push(e.duration)))
  .observe({ type: 'longtask', buffered: true });
"""


def load(browser, base: str, token_: str, total: int, wall_js: str | None) -> dict:
    """One fresh load: ms from navigation start to the open figure reading ``total``, the requests for the
    cases (list pages, rows), and the long tasks (ms) until then."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    context.add_init_script(LONG_TASKS)
    page = context.new_page()
    asked = {"list": 0, "rows": 0}

    def count(request):
        path = request.url.split("?")[0].split("/", 3)[-1]
        if path == "escalation/v1/cases":
            asked["list"] += 1
        elif path == "escalation/v1/cases/rows":
            asked["rows"] += 1

    page.on("request", count)
    if wall_js is not None:
        page.route(re.compile(r".*/wall/wall\.js(\?.*)?$"),
                   lambda route: route.fulfill(body=wall_js, content_type="text/javascript"))
    try:
        page.goto(f"{base}/wall/#token={token_}")
        page.wait_for_function("(n) => document.querySelector('#fig-open [data-value]').textContent === n",
                               arg=f"{total:,}", timeout=120000, polling=10)
        at = page.evaluate("performance.now()")
        long_tasks = page.evaluate("window.gcLong")
        return {"ms": at, **asked, "long": long_tasks}
    finally:
        context.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wall-js", type=Path)
    args = parser.parse_args()
    wall_js = args.wall_js.read_text(encoding="utf-8") if args.wall_js else None
    with Scope("wall_page") as scope:
        base, data = embedded(scope)
        watcher = crowd(base, data, args.cases, tag="bench", overdue_share=0.08)["watcher"]
        total = args.cases + 1
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                load(browser, base, watcher, total, wall_js)  # warm-up
                runs = [load(browser, base, watcher, total, wall_js) for _ in range(args.runs)]
            finally:
                browser.close()
    for r in runs:
        print(f"figures after {r['ms']:,.0f} ms; requests: {r['list']} to /cases, {r['rows']} to /cases/rows; "
              f"long tasks: {len(r['long'])}, longest {max(r['long'], default=0):.0f} ms, "
              f"sum {sum(r['long']):.0f} ms")
    print(f"median {statistics.median(r['ms'] for r in runs):,.0f} ms over {len(runs)} loads of {total:,} cases "
          f"({time.strftime('%H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
