"""Signed checkpoints of the audit trail, written on a schedule somewhere the database cannot rewrite.

Every ``audit_checkpoint_seconds`` (``GRIDCASE_AUDIT_CHECKPOINT_SECONDS``, real seconds, default 300)
the scheduler takes the chain's last row, signs its ``seq``, ``hash`` and the time with the audit key
(``shared.audit.sign_checkpoint``) and sends the checkpoint to ``audit_checkpoints``
(``GRIDCASE_AUDIT_CHECKPOINTS``):

- a file path: one JSON line appended and flushed to disk (``fsync``), opened with ``O_APPEND``. Put
  it on a volume the database's administrators cannot write, or make it append-only (``chattr +a``);
- an ``http://`` or ``https://`` URL: the JSON object POSTed (``Content-Type: application/json``,
  5 s timeout) to a service that keeps it (a log collector, another organisation's archive).

One more is written when the scheduler stops. Nothing is sent while the chain has not grown since the
last checkpoint this process wrote. A failed
delivery is logged and tried again at the next interval. ``gridcase audit verify`` reads the file
back (``--checkpoint``) and names a checkpoint whose signature does not verify, or that the chain no
longer holds. Rows appended after the last checkpoint are covered by their own MACs; rows deleted
from the tail after it are what the interval leaves open.
"""
from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

from shared import audit, logs

log = logs.get("gridcase.audit")


class Checkpoints:
    """Writes the audit trail's signed checkpoints for one escalation ``service`` (``maybe_write`` from
    the scheduler's loop; ``write`` to write one now)."""

    def __init__(self, service, *, monotonic=time.monotonic):
        settings = service.settings
        self.service = service
        self.key = settings.audit_key.encode() if settings.audit_key else None
        self.destination = settings.audit_checkpoints
        self.interval = settings.audit_checkpoint_seconds
        self.monotonic = monotonic
        self.next_at = monotonic()  # the first one when the scheduler starts
        self.last_seq: int | None = None

    def maybe_write(self, *, now: bool = False) -> audit.Checkpoint | None:
        """``write`` when the interval has passed since the last attempt (or ``now``: the scheduler
        stopping); otherwise nothing. A failure is logged, never raised."""
        if self.key is None or not self.destination or (not now and self.monotonic() < self.next_at):
            return None
        self.next_at = self.monotonic() + self.interval
        try:
            return self.write()
        except Exception:  # a full disk or an unreachable webhook must not stop the deadlines
            log.warning("audit checkpoint not written; trying again at the next interval",
                        destination=self.destination, exc_info=True)
            return None

    def write(self) -> audit.Checkpoint | None:
        """Sign the chain's last row now and deliver it; None (nothing sent) when the chain is empty or
        has not grown since this process's last checkpoint. Raises what the delivery raises."""
        with self.service.uow() as uow:
            head = uow.store.audit_head()
        if head is None or head.seq == self.last_seq:
            return None
        mark = audit.sign_checkpoint(self.key, audit.Checkpoint(head.seq, head.hash), self.service.clock.now())
        deliver(self.destination, mark)
        self.last_seq = head.seq
        log.info("audit checkpoint written", seq=mark.seq, destination=self.destination)
        return mark


def deliver(destination: str, mark: audit.Checkpoint) -> None:
    """Append ``mark`` as a JSON line to the file ``destination``, or POST it to the URL ``destination``."""
    body = json.dumps(mark.to_dict(), sort_keys=True)
    if destination.startswith(("http://", "https://")):
        request = urllib.request.Request(destination, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (the operator's URL)
            response.read()
        return
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (body + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str | os.PathLike) -> list[tuple[int, audit.Checkpoint | ValueError]]:
    """The checkpoints in a file: one JSON object per line (blank lines skipped), each with its line
    number; a line that is not a checkpoint gives its ValueError in place of one."""
    out: list[tuple[int, audit.Checkpoint | ValueError]] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((number, audit.Checkpoint.from_dict(json.loads(line))))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            out.append((number, ValueError(str(exc))))
    return out
