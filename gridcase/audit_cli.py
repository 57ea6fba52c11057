"""``gridcase audit verify|checkpoint``: check escalation's hash-chained audit trail.

``checkpoint`` prints the last row's ``{"seq", "hash"}`` as JSON: keep it somewhere the database's
administrators cannot write (a printout, another system). ``verify`` recomputes every row's hash and
link and names the first edited, deleted, reordered or inserted row; with ``--checkpoint FILE`` it
also detects a chain rewritten from the start, or cut short, since that checkpoint. Exit 0 when the
chain holds, 1 when it does not.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from shared import audit


def _escalation(data_dir):
    from services.escalation import bootstrap
    from shared.config import from_env

    return bootstrap.build(from_env(data_dir), web=False)


@click.group("audit")
def audit_group():
    """The tamper-evident audit trail of every case action."""


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a checkpoint printed earlier by `gridcase audit checkpoint`")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def verify_command(checkpoint_file, data_dir):
    """Recompute the chain; name the first tampered or missing row."""
    against = None
    if checkpoint_file:
        against = audit.Checkpoint.from_dict(json.loads(Path(checkpoint_file).read_text(encoding="utf-8")))
    service = _escalation(data_dir)
    count = 0

    def counted(rows):
        nonlocal count
        for row in rows:
            count += 1
            yield row

    with service.uow() as uow:
        problem = audit.find_break(counted(uow.store.audit_rows()), against=against)
    service.engine.dispose()
    if problem is not None:
        click.echo(f"audit chain broken at seq {problem.seq}: {problem.reason}")
        raise SystemExit(1)
    suffix = f", and it holds checkpoint seq {against.seq}" if against else ""
    click.echo(f"audit chain intact: {count} row(s){suffix}")


@audit_group.command("checkpoint")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def checkpoint_command(data_dir):
    """Print the last row's seq and hash as JSON, alone on stdout."""
    service = _escalation(data_dir)
    with service.uow() as uow:
        mark = audit.checkpoint(uow.store.audit_rows())
    service.engine.dispose()
    click.echo(json.dumps(mark.to_dict()))
