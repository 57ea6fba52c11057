"""``gridcase areas import|validate``: a hierarchy from GeoJSON files, with a validation report.

Whatever the files hold, the answer is a report naming the file, the feature and the problem, and exit
status 1 when anything is an error — never a traceback. Files may carry a UTF-8 byte-order mark.
"""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.fields import LIMITS
from shared.vocabulary import AREA_LEVELS as LEVELS

LEVEL_OPTION = click.option("--level", "levels", type=(click.Choice(LEVELS), click.Path(exists=True, dir_okay=False)),
                            multiple=True, required=True, help="a level and its FeatureCollection file; once per level")


def _read(levels) -> tuple[dict[str, dict], list]:
    """Each ``(level, path)``'s JSON, and the findings of files that cannot be read."""
    from services.dispatch.domain.geojson import read_level_file

    data, findings = {}, []
    for level, path in levels:
        value, found = read_level_file(path, level)
        findings += found
        if value is not None:
            data[level] = value
    return data, findings


def _progress(console):
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _report(console, findings, files: dict[str, str]) -> None:
    """The findings as a table: severity, file (the level's), feature, problem and the sentence."""
    if not findings:
        console.print("[green]no findings[/green]")
        return
    table = Table(title=f"{len(findings)} finding(s)")
    for column in ("severity", "file", "feature", "problem", "detail"):
        table.add_column(column)
    for f in findings:
        style = "red" if f.severity == "error" else "yellow"
        table.add_row(f"[{style}]{f.severity}[/{style}]", escape(files.get(f.level, f.level)),
                      escape(f.feature_id or "-"), f.problem, escape(f.detail))
    console.print(table)


def _files(levels) -> dict[str, str]:
    return {level: f"{Path(path).name} ({level})" for level, path in levels}


def _run(levels, repair, action):
    """Read the files and run ``action(data, repair, progress)``; files that cannot be read end the
    command here with their findings (exit 1)."""
    console = Console(stderr=True)
    data, unreadable = _read(levels)
    if unreadable:
        _report(console, unreadable, _files(levels))
        console.print("[red]nothing was checked: a file cannot be read[/red]")
        raise SystemExit(1)
    with _progress(console) as progress:
        tasks = {}

        def report(step, done, total):
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        result = action(data, repair, report)
    return console, result


@click.group()
def areas():
    """The city's area hierarchy (hq → subcenter → station → grid)."""


@areas.command("validate")
@LEVEL_OPTION
@click.option("--repair", is_flag=True, help="repair invalid rings with make_valid instead of rejecting them")
def validate(levels, repair):
    """Check a hierarchy without importing it; exit 1 on errors."""
    from services.dispatch.domain.geojson import build_hierarchy

    console, (hierarchy, findings) = _run(levels, repair, lambda data, rep, progress: build_hierarchy(
        data, repair=rep, progress=progress))
    _report(console, findings, _files(levels))
    if hierarchy is None:
        raise SystemExit(1)
    _summary(console, {level: len(hierarchy.level(level)) for level in LEVELS})


@areas.command("import")
@LEVEL_OPTION
@click.option("--repair", is_flag=True, help="repair invalid rings with make_valid instead of rejecting them")
@click.option("--activate/--no-activate", default=True, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def import_(levels, repair, activate, data_dir):
    """Import a new version of the hierarchy into dispatch's database; nothing changes on errors."""
    from services.dispatch import bootstrap, handlers
    from shared.config import from_env

    settings = from_env(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    dispatch = bootstrap.build(settings, web=False)
    sources = ", ".join(Path(p).name for _, p in levels)
    sources = sources if len(sources) <= LIMITS["source"] else sources[:LIMITS["source"] - 1] + "…"
    console, result = _run(levels, repair, lambda data, rep, progress: dispatch.run(
        handlers.import_areas, handlers.ImportAreas(data, source=sources, activate=activate, repair=rep,
                                                    progress=progress)))
    _report(console, result.findings, _files(levels))
    if result.version is None:
        console.print("[red]not imported: fix the errors above[/red]")
        raise SystemExit(1)
    with dispatch.uow() as uow:
        summary = next(v.summary for v in uow.store.versions() if v.id == result.version)
    _summary(console, summary, version=result.version, active=activate)
    if activate:
        _moves(console, result.moves)


def _summary(console, counts: dict, version: int | None = None, active: bool = False) -> None:
    table = Table(title=f"version {version}{' (active)' if active else ''}" if version else "hierarchy")
    table.add_column("level")
    table.add_column("areas", justify="right")
    for level in LEVELS:
        table.add_row(level, str(counts.get(level, 0)))
    console.print(table)


def _moves(console, moves) -> None:
    if not moves:
        console.print("no open case changed owner")
        return
    table = Table(title=f"{len(moves)} open case(s) re-routed")
    for column in ("case", "from", "to"):
        table.add_column(column)
    for move in moves:
        owner = lambda ids: " / ".join(escape(v) for v in (ids["grid"], ids["station"], ids["subcenter"]) if v)  # noqa: E731
        table.add_row(move.number, owner(move.before) or "-", owner(move.after) or "-")
    console.print(table)
