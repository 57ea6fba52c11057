"""The command center's live feed: Server-Sent Events made from the timeline table.

Every change of a case is a timeline row with a growing id, so the feed needs no bus subscription and no
state of its own: it polls for rows after the last one it sent (``CaseStore.steps_after``, scoped to the
caller like the case list) and writes each as an event whose id is the row's id. A client that reconnects
with ``Last-Event-ID`` gets exactly what it missed, from any process: it works the same under the embedded
server, under gunicorn (use ``gthread`` workers: a stream holds a thread, see deploy/gunicorn.conf.py)
and behind nginx (``X-Accel-Buffering: no``).

A stream ends after ``STREAM_SECONDS``, so that it never outlives a worker's timeout (gunicorn ``sync``
workers are killed after 30 s); clients reconnect at once with their last id and lose nothing.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from shared.auth import Identity
from shared.clock import isoformat

POLL = 0.4  # seconds between looks at the timeline: a new report reaches a board well within 2 s
KEEPALIVE = 10.0  # seconds between comment lines when nothing happens (proxies drop silent connections)
STREAM_SECONDS = 25.0  # a stream's lifetime; the client reconnects with Last-Event-ID
REPLAY_LIMIT = 500  # rows replayed to a client that reconnects; more missed than that: a ``reset``
BATCH = 200
RETRY_MS = 1000  # how soon an EventSource reconnects after the stream ends


def event(name: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def stream(service, caller: Identity, after: int | None, view: Callable, *, seconds: float = STREAM_SECONDS,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The events for ``caller`` after row ``after`` (None: from now, announced by ``hello``)."""
    yield f"retry: {RETRY_MS}\n\n"
    with service.uow() as uow:
        newest = uow.store.last_step_id()
    if after is None or after > newest:
        after = newest
        yield event("hello", {"last_event_id": newest}, newest)
    elif newest - after > REPLAY_LIMIT:
        after = newest
        yield event("reset", {"last_event_id": newest, "reason": "more was missed than is replayed"}, newest)
    started = last_write = time.monotonic()
    while time.monotonic() - started < seconds:
        now = service.clock.now()
        with service.uow() as uow:
            rows = uow.store.steps_after(caller, after, BATCH)
        for row_id, step, case, report, updated in rows:
            after = row_id
            yield event("case", {"case": view(step, case, report, updated, now), "step": {
                "id": row_id, "at": isoformat(step.at), "type": str(step.type), "level": int(step.level),
                "actor": step.actor, "note": step.note}}, row_id)
            last_write = time.monotonic()
        if len(rows) == BATCH:
            continue
        if time.monotonic() - last_write >= KEEPALIVE:
            yield ": keepalive\n\n"
            last_write = time.monotonic()
        sleep(POLL)
