"""Board benchmark: the command board in Chromium (headless, Playwright) for a sub-center with 10⁴ open
cases — time to the first list paint, time to the map ready, and a POSTed report's delay to its row on
screen — against the same page for a sub-center with 100 open cases.

    python -m benchmarks.board [--quick]

Set-up, not timed: ``gridcase up`` (embedded: SQLite, in-process bus) in a fresh data directory; one real
report filed through intake is the template; N open cases are then written straight into escalation's
``cases`` table in one transaction (``seed``: the template's row with a new id, number, place and
deadline; owners are the grid each random point lies in, its station and sub-center), N = 10,000 in the
busiest sub-center (quick: 2,000) and 100 in another, the baseline. Their deadlines are 7 to 30 days away,
so a new report (hours) sorts above them; a tenth carry a policy warning (``warned`` 0.8), a fifth are
acknowledged. No timeline rows are written: seeded cases cause no live events.

Figures (Chromium ``/usr/bin/chromium``, 1920×1080, a fresh context per load, the median of 3 loads):

- ``board.first_paint_10k``: navigation start → the first rows of the list painted (the page's
  ``gc-list-paint`` mark, one frame after the first render: the first screen, drawn from the answer to
  ``GET /escalation/v1/cases/rows?limit=100`` that the page's head asks for, while the whole list is on its
  way). Goal ≤ 1.5 s. Ratio: ÷ the same with 100 cases (``board.first_paint_100``).
- ``board.list_whole_10k``: navigation start → the whole list in and drawn (``gc-list-whole``: its counts,
  the order of every case; the pins follow). Ratio: ÷ the same with 100 cases.
- ``board.map_ready_10k``: navigation start → every pin in the cluster group (``gc-map-ready``). Ratio: ÷
  the same with 100 cases (``board.map_ready_100``).
- ``board.live_p50`` / ``board.live_p99``: a report POSTed to intake → its row in the list of the 10⁴-case
  board (a ``MutationObserver`` notes when a row with the case's number is first added; both ends read
  the same wall clock), over 200 reports at 5/s (quick 40), sent by 10 grid workers of that sub-center
  (the per-person limit is 60 a minute) at random points of their grids. The board is sorted by
  reported, newest first, so each new case lands in the window that is drawn. This is intake → dispatch
  → escalation → the live feed → the page. Goal ≤ 200 ms p99.
- ``board.rows_built_per_event``: rows the list built per live event during that run (1.0: each event
  rebuilt only its own row; the whole window would be ~45).
"""
from __future__ import annotations

import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa
from shapely.geometry import Point, shape

from benchmarks._support import Figure, Scope, emit, note, percentile, sigterm_as_exit
from harness.processes import token

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1920, "height": 1080}


def auth(token_: str, **headers: str) -> dict:
    return {"Authorization": f"Bearer {token_}", **headers}


def city(base: str, admin: str) -> dict:
    """The demo city's grids by sub-center: ``{subcenter id: [(grid id, station id, polygon), ...]}``."""
    def features(level):
        return requests.get(f"{base}/dispatch/v1/areas", params={"level": level, "simplify": "false"},
                            headers=auth(admin), timeout=60).json()["features"]
    stations = {f["properties"]["id"]: f["properties"]["parent"] for f in features("station")}
    grids: dict[str, list] = {}
    for f in features("grid"):
        station = f["properties"]["parent"]
        grids.setdefault(stations[station], []).append((f["properties"]["id"], station, shape(f["geometry"])))
    return grids


def report(base: str, worker: str, lon: float, lat: float, description: str) -> dict:
    answer = requests.post(f"{base}/intake/v1/reports", json={
        "category": "street_light", "description": description, "location": {"lon": lon, "lat": lat}},
        headers=auth(worker, **{"Idempotency-Key": uuid.uuid4().hex}), timeout=30)
    answer.raise_for_status()
    return answer.json()


def seed(database: Path, template_id: str, subcenter: str, grids: list, n: int, *, names: dict,
         days: tuple[float, float] = (7, 30), overdue_share: float = 0.0, rng: random.Random | None = None) -> None:
    """Write ``n`` open cases of ``subcenter`` into escalation's SQLite file ``database`` in one transaction,
    each a copy of the case ``template_id`` (its policy snapshot, category, hq) at a random point of one of
    ``grids`` (``[(grid id, station id, polygon)]``), owned at level 1 by that grid, with a deadline
    ``days`` away (a share ``overdue_share`` of them an hour past it), a tenth warned (0.8) and a fifth
    acknowledged. ``names``: area id → name. No timeline rows: no live event is caused."""
    from services.escalation.store import cases

    rng = rng or random.Random(7)
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as db:
            template = db.execute(sa.select(cases).where(cases.c.id == template_id)).mappings().one()
            now = datetime.now(UTC)
            rows = []
            for i in range(n):
                grid, station, polygon = grids[i % len(grids)]
                x0, y0, x1, y1 = polygon.bounds
                while True:
                    lon, lat = rng.uniform(x0, x1), rng.uniform(y0, y1)
                    if polygon.contains(Point(lon, lat)):
                        break
                late = rng.random() < overdue_share
                deadline = now - timedelta(hours=1) if late else now + timedelta(days=rng.uniform(*days))
                areas = dict(template["areas"])
                areas.update(grid={"id": grid, "name": names.get(grid, grid)},
                             station={"id": station, "name": names.get(station, station)},
                             subcenter={"id": subcenter, "name": names.get(subcenter, subcenter)})
                opened = now - timedelta(minutes=rng.uniform(1, 600))
                rows.append({**template, "id": str(uuid.uuid4()), "number": f"20000101-{i:06d}",
                             "status": "acknowledged" if i % 5 == 1 else "open", "level": 1,
                             "owner_area_id": grid, "grid_id": grid, "station_id": station, "subcenter_id": subcenter,
                             "areas": areas, "overdue": late, "deadline_at": deadline, "due_at": None,
                             "warned": 0.8 if i % 10 == 3 and not late else None, "next_warning_at": None,
                             "warnings": None, "assignee": None, "assignee_unit": None, "opened_at": opened,
                             "reported_at": opened, "updated_at": opened, "lon": lon, "lat": lat,
                             "description": f"seeded case {i}", "place": f"{grid} / {station} / {subcenter}",
                             "revision": 1})
            db.execute(sa.insert(cases), rows)
    finally:
        engine.dispose()


def embedded(scope: Scope) -> tuple[str, Path]:
    """``gridcase up`` on a port of its own with a data directory in ``scope``, once it answers ``/readyz``:
    (its base URL, its data directory)."""
    data = scope.tmp / "data"
    data.mkdir()
    scope.processes.gridcase("up", ["up", "--port", "0", "--data-dir", str(data)])
    base = scope.processes.announced("up", r"gridcase is up at (http://\S+)", timeout=120).group(1)
    scope.processes.wait_ready("up", f"{base}/readyz", timeout=120)
    return base, data


def crowd(base: str, data: Path, n: int, *, tag: str, days: tuple[float, float] = (7, 30), overdue_share: float = 0.0,
          rng: random.Random | None = None) -> dict:
    """The city's busiest sub-center crowded with ``n`` open cases: on the embedded system served at ``base``
    (its data directory ``data``), a grid worker files one case over HTTP in the sub-center's first grid,
    and ``seed`` copies it ``n`` times (``days``, ``overdue_share``, ``rng`` as there). ``tag`` names the
    tokens' users and the template's words. Returns {"admin", "grids" (``city``'s), "subcenter", "grid",
    "point" (a shapely Point inside the grid, degrees WGS84), "worker", "watcher" (a token of the
    sub-center), "template" (the filed case), "names" (area id → name)}."""
    admin = token(data, "admin", user=f"{tag}-admin")
    grids = city(base, admin)
    subcenter = max(grids, key=lambda s: len(grids[s]))
    grid, _, polygon = grids[subcenter][0]
    point = polygon.representative_point()
    worker = token(data, "grid_worker", area=grid, user=f"{tag}-worker")
    template = report(base, worker, point.x, point.y, f"the template of {tag}")
    watcher = token(data, "subcenter", area=subcenter, user=f"{tag}-watcher")
    _wait_case(base, template["id"], watcher)
    names = _area_names(base, admin)
    seed(data / "escalation.db", template["id"], subcenter, grids[subcenter], n, names=names, days=days,
         overdue_share=overdue_share, rng=rng)
    return {"admin": admin, "grids": grids, "subcenter": subcenter, "grid": grid, "point": point, "worker": worker,
            "watcher": watcher, "template": template, "names": names}


def _area_names(base: str, admin: str) -> dict:
    names = {}
    for level in ("grid", "station", "subcenter"):
        for f in requests.get(f"{base}/dispatch/v1/areas", params={"level": level}, headers=auth(admin),
                              timeout=60).json()["features"]:
            names[f["properties"]["id"]] = f["properties"]["name"]
    return names


def _wait_case(base: str, case_id: str, token_: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(token_), timeout=10).status_code == 200:
            return
        time.sleep(0.05)
    raise RuntimeError(f"case {case_id} never reached escalation")


MARKS = ("gc-rows-request", "gc-rows-first", "gc-list-paint", "gc-rows-received", "gc-rows-kept", "gc-list-whole",
         "gc-map-ready")


def _load_times(browser, base: str, token_: str) -> tuple[float, float, dict]:
    """One fresh load of the board: (ms to the first list paint, ms to the map ready, every mark's ms; None
    for a mark not made, as ``gc-rows-first`` when the whole list came before the first screen)."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{base}/board/#token={token_}")
        page.wait_for_selector("body[data-list-painted=true]", timeout=60000)
        page.wait_for_selector("body[data-map-ready=true]", timeout=120000)
        page.wait_for_function("() => performance.getEntriesByName('gc-list-whole').length", timeout=120000)
        marks = page.evaluate("(names) => Object.fromEntries(names.map("
                              "(n) => [n, (performance.getEntriesByName(n)[0] || {startTime: null}).startTime]))",
                              list(MARKS))
        return marks["gc-list-paint"], marks["gc-map-ready"], marks
    finally:
        context.close()


def _live(browser, base: str, token_: str, workers: list, count: int, rate: float) -> tuple[list[float], float]:
    """POST ``count`` reports at ``rate``/s and read when each row appeared: the delays (ms), and the rows
    built per event."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{base}/board/#token={token_}")
        page.wait_for_selector("body[data-list-painted=true]", timeout=60000)
        page.locator("#live[data-state=live]").wait_for(timeout=30000)
        page.select_option("#f-sort", "reported")
        page.wait_for_timeout(500)
        page.evaluate("""() => {
            window.gcSeen = {};
            new MutationObserver((records) => {
                const now = Date.now();
                for (const r of records) for (const node of r.addedNodes) {
                    if (node.nodeType !== 1 || !node.dataset || !node.dataset.case) continue;
                    const link = node.querySelector('a');
                    if (link && !(link.textContent in window.gcSeen)) window.gcSeen[link.textContent] = now;
                }
            }).observe(document.getElementById('case-rows'), { childList: true });
            window.gcBuiltBefore = window.gcBoardStats.rowsBuilt;
        }""")
        sent: dict[str, float] = {}
        rng = random.Random(11)
        start = time.monotonic()
        for i in range(count):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            worker, (grid, _, polygon) = workers[i % len(workers)]
            x0, y0, x1, y1 = polygon.bounds
            while True:
                lon, lat = rng.uniform(x0, x1), rng.uniform(y0, y1)
                if polygon.contains(Point(lon, lat)):
                    break
            at = time.time() * 1000
            filed = report(base, worker, lon, lat, f"board benchmark report {i}")
            sent[filed["number"]] = at
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = page.evaluate("() => window.gcSeen")
            if all(number in seen for number in sent):
                break
            time.sleep(0.5)
        missing = [n for n in sent if n not in seen]
        for number in missing[:5]:
            case = requests.get(f"{base}/escalation/v1/cases/by-number/{number}", headers=auth(token_), timeout=10)
            on_page = page.locator(f"#case-rows tr[data-case] a:text-is('{number}')").count()
            note(f"not seen on the board: {number}: {case.status_code} "
                 f"{case.json().get('status') if case.ok else case.text[:200]}; rows with it now: {on_page}")
        built = page.evaluate("() => window.gcBoardStats.rowsBuilt - window.gcBuiltBefore")
        return [seen[n] - at for n, at in sent.items() if n in seen], built / count, len(missing)
    finally:
        context.close()


def run(quick: bool = False) -> list[Figure]:
    from playwright.sync_api import sync_playwright

    big, small = (2_000, 100) if quick else (10_000, 100)
    reports, rate = (40, 5.0) if quick else (200, 5.0)
    label = f"{big // 1000}k"
    with Scope("board") as scope:
        base, data = embedded(scope)
        admin = token(data, "admin", user="bench-admin")
        grids = city(base, admin)
        names = _area_names(base, admin)
        busiest, other = sorted(grids, key=lambda s: -len(grids[s]))[:2]
        grid, station, polygon = grids[busiest][0]
        point = polygon.representative_point()
        worker = token(data, "grid_worker", area=grid, user="bench-template")
        template = report(base, worker, point.x, point.y, "board benchmark: the template case")
        watcher = token(data, "subcenter", area=busiest, user="bench-watcher")
        _wait_case(base, template["id"], watcher)
        started = time.perf_counter()
        seed(data / "escalation.db", template["id"], busiest, grids[busiest], big, names=names)
        seed(data / "escalation.db", template["id"], other, grids[other], small, names=names, rng=random.Random(8))
        note(f"{big:,} open cases seeded in sub-center {busiest} ({len(grids[busiest])} grids) and {small} in "
             f"{other}, in {time.perf_counter() - started:.1f} s (one INSERT each; not timed)")
        baseline = token(data, "subcenter", area=other, user="bench-baseline")
        rows = requests.get(f"{base}/escalation/v1/cases/rows", headers=auth(watcher), timeout=60)
        note(f"GET /escalation/v1/cases/rows for {busiest}: {rows.json()['total']:,} cases, "
             f"{len(rows.content) / 1e6:.1f} MB, {rows.elapsed.total_seconds() * 1000:.0f} ms")
        workers = [(token(data, "grid_worker", area=g[0], user=f"bench-worker-{i}"), g)
                   for i, g in enumerate(grids[busiest][:10])]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                _load_times(browser, base, watcher)  # warm-up: the server's caches, the browser's
                loads = {name: [_load_times(browser, base, t) for _ in range(3)]
                         for name, t in (("big", watcher), ("small", baseline))}
                delays, built, missed = _live(browser, base, watcher, workers, reports, rate)
            finally:
                browser.close()
    paint = {k: statistics.median(x[0] for x in v) for k, v in loads.items()}
    whole = {k: statistics.median(x[2]["gc-list-whole"] for x in v) for k, v in loads.items()}
    ready = {k: statistics.median(x[1] for x in v) for k, v in loads.items()}
    rounded = {k: [[round(a), round(b)] for a, b, _ in v] for k, v in loads.items()}
    note(f"loads (first paint ms, map ready ms): {json.dumps(rounded)}")
    for name, runs in loads.items():
        middle = sorted(runs)[len(runs) // 2][2]
        note(f"{name}: where the median load's time goes (ms from navigation start): "
              + ", ".join(f"{mark.removeprefix('gc-')} {middle[mark]:.0f}" for mark in MARKS
                         if middle[mark] is not None))
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    note(f"live: {len(delays)} reports at {rate:g}/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(delays):.0f} ms")
    return [("board.first_paint_100", round(paint["small"] / 1000, 3), "s", None),
            (f"board.first_paint_{label}", round(paint["big"] / 1000, 3), "s", round(paint["big"] / paint["small"], 2)),
            ("board.list_whole_100", round(whole["small"] / 1000, 3), "s", None),
            (f"board.list_whole_{label}", round(whole["big"] / 1000, 3), "s", round(whole["big"] / whole["small"], 2)),
            ("board.map_ready_100", round(ready["small"] / 1000, 3), "s", None),
            (f"board.map_ready_{label}", round(ready["big"] / 1000, 3), "s", round(ready["big"] / ready["small"], 2)),
            ("board.live_p50", round(p50), "ms", None),
            ("board.live_p99", round(p99), "ms", None),
            ("board.rows_built_per_event", round(built, 2), "rows", None),
            ("board.live_missed", missed, "reports", None)]


def main() -> None:
    sigterm_as_exit()
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
