"""Dispatch benchmark: locating points in synthetic cities, against shapely's own STRtree in the same run.

    python -m benchmarks.dispatch

The machine is shared and noisy, so each figure is the best of several interleaved rounds and comes with a
ratio against a raw baseline on the same polygons and points:

- `locate_many` points/s ÷ `STRtree(grid_polygons).query(points, predicate="within")` points/s (goal ≥ 0.8);
- per-point `Locator.locate` µs, ratio = raw per-point `tree.query(Point, predicate="within")` µs ÷ ours;
- resident memory after building the 100,000-grid Locator (goal ≤ 500 MB; the peak, which includes the
  generated GeoJSON, is printed too) and the time to generate the city, turn it into a `Hierarchy` and build
  the Locator.

Prints one line per figure: `name value unit ratio` ("-" where a figure has no baseline).
"""
from __future__ import annotations

import resource
import time

import numpy as np
import shapely
from shapely import STRtree

from services.dispatch.citygen import generate_city, hierarchy_from_city
from services.dispatch.domain.locate import Locator, OutsideCity

SIZES = (10_000, 100_000)
POINTS = 200_000
SINGLE_POINTS = 20_000
ROUNDS = 5


def run(sizes=SIZES, points: int = POINTS, rounds: int = ROUNDS) -> list[tuple[str, float, str, float | None]]:
    figures = []
    for grids in sizes:
        started = time.perf_counter()
        hierarchy = hierarchy_from_city(generate_city(grids, seed=grids))
        locator = Locator(hierarchy)
        build_s = time.perf_counter() - started
        if grids == max(sizes):
            figures.append((f"dispatch.build_{grids}_grids", round(build_s, 2), "s", None))
            figures.append((f"dispatch.rss_{grids}_grids", round(_rss_mb()), "MB", None))
            figures.append(("dispatch.peak_rss_so_far", round(_peak_rss_mb()), "MB", None))
        figures += _throughput(grids, hierarchy, locator, points, rounds)
    return figures


def _throughput(grids, hierarchy, locator, n_points, rounds):
    polygons = np.array([a.geometry for a in hierarchy.level("grid")], dtype=object)
    tree = STRtree(polygons)
    x0, y0, x1, y1 = hierarchy.level("hq")[0].geometry.bounds
    rng = np.random.default_rng(grids)
    lons, lats = rng.uniform(x0, x1, n_points), rng.uniform(y0, y1, n_points)
    points = shapely.points(lons, lats)

    raw, ours = float("inf"), float("inf")
    for _ in range(rounds):  # interleaved, so a noisy moment hurts both sides alike
        raw = min(raw, _seconds(lambda: tree.query(points, predicate="within")))
        ours = min(ours, _seconds(lambda: locator.locate_many(lons, lats)))

    one_lons, one_lats = lons[:SINGLE_POINTS].tolist(), lats[:SINGLE_POINTS].tolist()
    raw_one, ours_one = float("inf"), float("inf")
    for _ in range(rounds):
        raw_one = min(raw_one, _seconds(lambda: _raw_one_by_one(tree, one_lons, one_lats)))
        ours_one = min(ours_one, _seconds(lambda: _locate_one_by_one(locator, one_lons, one_lats)))

    raw_rate, our_rate = n_points / raw, n_points / ours
    return [
        (f"dispatch.raw_strtree_within_{grids}_grids", round(raw_rate), "points/s", None),
        (f"dispatch.locate_many_{grids}_grids", round(our_rate), "points/s", round(our_rate / raw_rate, 2)),
        (f"dispatch.locate_one_{grids}_grids", round(ours_one / SINGLE_POINTS * 1e6, 2), "us/point",
         round(raw_one / ours_one, 2)),
    ]


def _raw_one_by_one(tree, lons, lats):
    for lon, lat in zip(lons, lats, strict=True):
        tree.query(shapely.Point(lon, lat), predicate="within")


def _locate_one_by_one(locator, lons, lats):
    for lon, lat in zip(lons, lats, strict=True):
        try:
            locator.locate(lon, lat)
        except OutsideCity:
            pass


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    for name, value, unit, ratio in run():
        print(name, value, unit, "-" if ratio is None else ratio, flush=True)


if __name__ == "__main__":
    main()
