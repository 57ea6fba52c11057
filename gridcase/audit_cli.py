"""``gridcase audit verify|checkpoint``: check escalation's audit trail and the timeline beside it.

``verify`` reads, in one snapshot of the escalation database:

1. the signed checkpoints (``--checkpoint FILE``, repeatable; by default the file the scheduler writes,
   ``GRIDCASE_AUDIT_CHECKPOINTS``): each must be signed with the audit key (``GRIDCASE_AUDIT_KEY``);
2. the hash chain (``shared.audit.find_break``): every row's hash, link and MAC under the audit key,
   and every checkpoint still held (a row with its ``seq`` and ``hash``);
3. the timeline against the chain (``shared.audit.timeline_difference``): every timeline row the case
   view, the live feed and the statistics read must be the step its audit row holds.

It prints one line per problem — the first bad audit row, the first timeline row that differs, each
checkpoint that does not verify — and exits 1; or one line saying what holds, and exits 0.
``checkpoint`` prints a checkpoint of the chain's last row, signed, as one JSON line.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import sqlalchemy as sa

from shared import audit


def _escalation(data_dir):
    from services.escalation import bootstrap
    from shared.config import from_env

    return bootstrap.build(from_env(data_dir), web=False)


@click.group("audit")
def audit_group():
    """The tamper-evident audit trail of every case action, and the timeline it covers."""


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a file of signed checkpoints (JSON lines; repeatable) [default: GRIDCASE_AUDIT_CHECKPOINTS "
                   "when it is a file that exists]")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def verify_command(checkpoint_files, data_dir):
    """Check the chain, its signatures and checkpoints, and the timeline against it; name the first
    difference of each."""
    from services.escalation.checkpoints import read
    from services.escalation.store import CaseStore

    service = _escalation(data_dir)
    settings = service.settings
    key = settings.audit_key.encode()
    files = list(checkpoint_files)
    destination = settings.audit_checkpoints or ""
    if not files and not destination.startswith(("http://", "https://")) and Path(destination).is_file():
        files = [destination]
    problems: list[str] = []
    marks: list[audit.Checkpoint] = []
    for name in files:
        for line, mark in read(name):
            if isinstance(mark, ValueError):
                problems.append(f"checkpoint {name}:{line}: not a checkpoint ({mark})")
            elif not audit.signed_by(key, mark):
                problems.append(f"checkpoint {name}:{line} (seq {mark.seq}): its signature does not verify "
                                "(forged or edited, or signed with another GRIDCASE_AUDIT_KEY)")
            else:
                marks.append(mark)
    count = 0

    def counted(rows):
        nonlocal count
        for row in rows:
            count += 1
            yield row

    options = {"isolation_level": "REPEATABLE READ"} if service.engine.dialect.name == "postgresql" else {}
    try:
        with service.engine.connect().execution_options(**options) as connection, connection.begin():
            store = CaseStore(lambda: connection, service.engine)  # one snapshot for the chain and the timeline
            broken = audit.find_break(counted(store.audit_rows()), against=marks, key=key)
            timeline = audit.timeline_difference(store.audit_steps_by_case(), store.timeline_by_case())
    except sa.exc.DBAPIError as exc:
        raise click.ClickException(f"cannot read the escalation database: {str(exc).splitlines()[0]}") from exc
    finally:
        service.engine.dispose()
    if broken is not None:
        problems.insert(0, f"audit chain broken at seq {broken.seq}: {broken.reason}")
    if timeline.first is not None:
        problems.append(f"timeline differs from the audit chain at {timeline.first.describe()}"
                        + (f" ({timeline.cases} case(s) differ)" if timeline.cases > 1 else ""))
    if problems:
        for line in problems:
            click.echo(line)
        raise SystemExit(1)
    summary = (f"audit chain intact: {count} row(s), each signed with the audit key; "
               f"the timeline's {timeline.rows} row(s) match it")
    if marks:
        last = max(marks, key=lambda m: m.seq)
        summary += (f"; it holds {len(marks)} signed checkpoint(s), the last at seq {last.seq} "
                    f"({audit.utc_text(last.at)}), {count - last.seq} row(s) after it")
    else:
        summary += "; no signed checkpoint read"
    click.echo(summary)


@audit_group.command("checkpoint")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def checkpoint_command(data_dir):
    """Print a checkpoint of the chain's last row (seq, hash, time), signed with the audit key, as one
    JSON line alone on stdout (the scheduler writes the same to GRIDCASE_AUDIT_CHECKPOINTS)."""
    service = _escalation(data_dir)
    with service.uow() as uow:
        head = uow.store.audit_head()
    service.engine.dispose()
    mark = audit.Checkpoint(head.seq, head.hash) if head else audit.Checkpoint(0, audit.GENESIS)
    signed = audit.sign_checkpoint(service.settings.audit_key.encode(), mark, service.clock.now())
    click.echo(json.dumps(signed.to_dict(), sort_keys=True))
