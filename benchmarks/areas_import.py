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
    return figures


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
    emit(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
