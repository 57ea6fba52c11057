"""Area import benchmark: validating, linking and storing a city's hierarchy, for Berlin and for 100,000 grids.

    python -m benchmarks.areas_import [--quick]

Each city's level files are read with ``services.dispatch.domain.geojson.load_city_dir`` (the raw baseline:
reading and JSON-parsing the same files), then imported with ``services.dispatch.handlers.import_areas``
(``build_hierarchy`` — parse, geometry checks, overlaps, parents, gaps — and then storing and activating the
version) into a fresh SQLite database made with ``shared.db.make_engine`` + ``shared.migrations.upgrade``.
The split between building and storing comes from ``import_areas``' progress callback: the building ends
at its last progress report.

Figures: ``dispatch.import_<city>`` seconds, ratio = JSON parsing seconds ÷ import seconds (the share of the
import a bare parse of the same files takes). Berlin is ``examples/berlin`` (447 planning areas); the
synthetic city is ``generate_city(100_000, seed=100_000)`` as ``benchmarks/dispatch.py`` makes it
(``--quick``: 10,000 grids).

A hostile file: n grids piled on each other (each a copy of one grid moved by 10⁻⁷°), validated by
``build_hierarchy`` in a child process (the import is refused: nothing is stored). Figures
``dispatch.validate_<n>_piled_grids`` (seconds, ratio = the 800-grid pile's seconds ÷ this one's: 0.25
is linear growth) and ``dispatch.validate_peak_<n>_piled_grids`` (the child's peak memory growth, MB).
"""
from __future__ import annotations

import sys
import time

from benchmarks._support import ROOT, Figure, Scope, emit, note, sigterm_as_exit


def run(quick: bool = False) -> list[Figure]:
    from services.dispatch.citygen import generate_city, write_city

    grids = 10_000 if quick else 100_000
    figures = []
    with Scope("import") as scope:
        figures.append(_import(scope, "berlin", ROOT / "examples" / "berlin"))
        started = time.perf_counter()
        folder = scope.tmp / f"city-{grids}"
        write_city(generate_city(grids, seed=grids), folder)
        note(f"generated and wrote the {grids:,}-grid city in {time.perf_counter() - started:.1f} s (not timed)")
        figures.append(_import(scope, f"{grids}_grids", folder))
    baseline = None
    for n in (800, 3200):
        seconds, peak_mb = _pile(n)
        baseline = baseline or seconds
        figures.append((f"dispatch.validate_{n}_piled_grids", round(seconds, 2), "s", round(baseline / seconds, 2)))
        figures.append((f"dispatch.validate_peak_{n}_piled_grids", round(peak_mb), "MB", None))
    return figures


def _pile(n: int) -> tuple[float, float]:
    """(seconds, peak memory growth in MB) of validating ``n`` piled grids, in a child process."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, "-m", "benchmarks.areas_import", "--pile", str(n)], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=600)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    note(f"{n} piled grids: {measured['findings']} finding(s) in {measured['seconds']:.2f} s, "
         f"peak +{measured['peak_mb']:.0f} MB")
    return measured["seconds"], measured["peak_mb"]


def _pile_child(n: int) -> None:
    import json
    from pathlib import Path

    import shapely

    from services.dispatch.citygen import generate_city
    from services.dispatch.domain.geojson import build_hierarchy

    def peak_kb() -> int:  # VmHWM: this program's own peak (ru_maxrss would start from the parent's)
        return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))

    city = generate_city(16, seed=16)
    first = shapely.geometry.shape(city["grid"]["features"][0]["geometry"])
    parent = city["grid"]["features"][0]["properties"]["parent"]
    city["grid"]["features"] = [{"type": "Feature", "properties": {"id": f"X{i}", "parent": parent},
                                 "geometry": shapely.geometry.mapping(shapely.affinity.translate(first, xoff=i * 1e-7))}
                                for i in range(n)]
    before = peak_kb()
    started = time.perf_counter()
    _, findings = build_hierarchy(city)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_mb": (peak_kb() - before) / 1024, "findings": len(findings)}))


def _import(scope: Scope, name: str, folder) -> Figure:
    from services.dispatch import bootstrap, handlers
    from services.dispatch.domain.geojson import load_city_dir
    from shared.config import Settings
    from shared.vocabulary import AREA_LEVELS as LEVELS

    started = time.perf_counter()
    levels = load_city_dir(folder)
    parse_s = time.perf_counter() - started

    dispatch = bootstrap.build(Settings(database_urls={"dispatch": f"sqlite:///{scope.tmp / f'dispatch-{name}.db'}"},
                                        secret="bench"), web=False)
    try:
        last_report = [0.0]

        def progress(_step, _done, _total):
            last_report[0] = time.perf_counter()

        started = time.perf_counter()
        result = dispatch.run(handlers.import_areas, handlers.ImportAreas(levels, source=name, progress=progress))
        import_s = time.perf_counter() - started
    finally:
        dispatch.engine.dispose()
    if result.version is None:
        raise RuntimeError(f"{name}: import rejected: {result.findings[:5]}")
    build_s = last_report[0] - started
    counts = {level: len(levels[level]["features"]) for level in LEVELS}
    note(f"import {name}: {counts}; JSON parse {parse_s:.2f} s; import {import_s:.2f} s = build_hierarchy "
         f"{build_s:.2f} s + store and activate {import_s - build_s:.2f} s; {len(result.findings)} warning(s)")
    return (f"dispatch.import_{name}", round(import_s, 2), "s", round(parse_s / import_s, 2))


def main() -> None:
    sigterm_as_exit()
    if "--pile" in sys.argv:
        _pile_child(int(sys.argv[sys.argv.index("--pile") + 1]))
        return
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
