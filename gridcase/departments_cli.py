"""``gridcase departments import|list``: the city's functional departments from a ``departments.toml``.

A file with any problem imports nothing; each problem is printed as ``FILE:LINE: problem`` and the
command exits 1 (``shared.departments`` says what is checked).
"""
from __future__ import annotations

from pathlib import Path

import click

DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False), default=None)


def _dispatch(data_dir):
    from services.dispatch import bootstrap
    from shared.config import from_env

    settings = from_env(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return bootstrap.build(settings, web=False)


def import_file(dispatch, path: Path):
    """Import ``path`` into ``dispatch`` (a built service); the handler's ``DepartmentsImported``."""
    from services.dispatch import handlers

    return dispatch.run(handlers.import_departments, handlers.ImportDepartments(path.read_bytes(), path.name))


@click.group()
def departments():
    """The city's functional departments (职能部门): water, power, traffic police, 城管执法, …"""


@departments.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DATA_DIR
def import_(file, data_dir):
    """Replace the city's departments with FILE's (departments.toml); nothing changes on a problem."""
    result = import_file(_dispatch(data_dir), file)
    for finding in result.findings:
        click.echo(str(finding), err=True)
    if result.version is None:
        raise SystemExit(1)
    click.echo(f"{len(result.departments)} departments imported (version {result.version})")


@departments.command("list")
@DATA_DIR
def list_(data_dir):
    """The city's departments: id, the area served, names, what each leads and co-handles."""
    from services.dispatch import handlers

    for d in _dispatch(data_dir).run(handlers.list_departments):
        click.echo(f"{d.id}\t{d.serves}\t{d.zh} / {d.en}\tleads: {', '.join(d.leads) or '-'}\t"
                   f"co-handles: {', '.join(d.co_handles) or '-'}")
