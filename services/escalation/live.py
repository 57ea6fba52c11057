"""The command center's live feed: Server-Sent Events made from the timeline table, read once per process.

Every change of a case is a timeline row with a growing id, so the feed needs no bus subscription. One
``Tailer`` per API process (and service) polls the timeline for rows after the last one it read — one
query every ``POLL`` seconds while at least one board is connected, none while none is, and sooner when a
step commits in its own process (``shared.uow.on_commit``). On PostgreSQL the workers' and the scheduler's
steps, committed in other processes, notify it (``shared.pgnotify.TIMELINE_CHANNEL``): it reads at most
every ``LISTENING_GAP`` seconds while they come, and polls only every ``LISTENING_POLL`` seconds, a safety
net for a lost listening connection — renders each row
once (the case as the list shows it, and the step) and keeps the last ``REPLAY_LIMIT`` in memory. Each
connected stream waits on the tailer, and writes the rows its caller may see (``visible``: the area-scope
rule ``shared.owners.in_scope``; a functional department the cases where its part is active, assigned
or acknowledged: what its board holds, as the store's ``on_board``). The database sees one query per
poll per process, whatever the number of screens.

A step that moves a case out of a caller's area (a transfer, a re-route by a new area version) reaches
that caller as a ``removed`` event (``{"case_id", "type"}``, the step's type), with the same id: its board
(``/board/``, ``/wall/``) drops the case at once instead of holding it until it next reloads the list and
reads "no such case". So does a step that ends a department's part (its feedback: done or declined):
that department's board no longer holds the case. The timeline row keeps the scope the step left
(``left_*``) and the departments whose part it ended (``left_departments``), so a reconnecting client is
told as well.

Timeline ids come from a sequence, so on PostgreSQL a transaction can commit a lower id after a higher one
was read. The tailer remembers the ids it skipped over (``GAP_SECONDS`` at most: a rolled-back id never
comes) and reads again from the oldest of them; a row that turns up late is given to every stream that
has passed its id (``late_since``) and to the others in order. On SQLite writers take turns, so ids commit
in order.

Each event's id is its timeline row's id, so a client that reconnects with ``Last-Event-ID`` gets exactly
what it missed, from any process: from the tailer's memory, or, for rows older than what it holds (a
process that has just started, or a stream that fell behind), from one scoped query for that client
(``CaseStore.steps_after``). A client whose id is ahead of this process (it came from a replica that had
polled more recently) waits for this process's next poll, which has seen what that one saw.

Under gunicorn the escalation API runs gevent workers (deploy/gunicorn.conf.py): a stream is a greenlet,
not a thread, and the tailer's queries yield to them (psycopg ≥ 3.1.14 cooperates with gevent). Behind
nginx a stream is not buffered (``X-Accel-Buffering: no``). A stream ends after ``STREAM_SECONDS`` so that
it never outlives a worker's timeout; clients reconnect at once with their last id and lose nothing.
"""
from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared import logs, pgnotify
from shared.auth import Identity
from shared.clock import isoformat
from shared.owners import Owners, in_scope
from shared.uow import on_commit
from shared.vocabulary import Role
from shared.words import note_message, note_text

log = logs.get("gridcase.escalation.live")

POLL = 0.4  # seconds between looks at the timeline: a new report reaches a board well within 2 s
WOKEN_GAP = 0.05  # seconds at least between looks when this process's commits wake the tailer
LISTENING_GAP = 0.1  # the same on PostgreSQL, woken by every process's steps: at most 10 queries a second
LISTENING_POLL = 2.0  # seconds between looks on PostgreSQL, where notifications bring the news: a safety net
READ_RETRY = 2.0  # seconds before the tailer reads again after a failed read (a database failover)
KEEPALIVE = 10.0  # seconds between comment lines when nothing happens (proxies drop silent connections)
STREAM_SECONDS = 25.0  # a stream's lifetime; the client reconnects with Last-Event-ID
REPLAY_LIMIT = 500  # rows replayed to a client that reconnects; more missed than that: a ``reset``
HOLD = 5.0  # seconds the tailer keeps what it read, however much: a burst reaches every stream from memory
BATCH = 500  # rows one poll reads at most (a full batch is followed by the next poll at once)
RETRY_MS = 1000  # how soon an EventSource reconnects after the stream ends
GAP_SECONDS = 10.0  # how long a skipped timeline id is waited for (a transaction still committing)
MAX_GAPS = 1000  # skipped ids remembered at most (more at once: a sequence jump, not transactions)
LATE_KEEP = 1000  # late rows remembered for the streams that had passed them


def event(name: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


@dataclass(frozen=True)
class Entry:
    """One timeline row as the feed sends it: its id, who may see it (``owners``; ``departments``: those
    with an active part on the case), and the ``case`` event, rendered (``text`` in English; ``zh``: in
    Chinese, when the step's note is a system note that reads otherwise in Chinese); for a step that moved
    the case out of an area scope, that scope (``left``), for one that ended departments' parts, those
    departments (``left_departments``), and the ``removed`` event their callers get instead."""
    id: int
    owners: Owners
    departments: frozenset[str]
    text: str
    left: Owners | None = None
    removed: str = ""
    left_departments: frozenset[str] = frozenset()
    zh: str = ""


def visible(caller: Identity, entry: Entry) -> bool:
    """Whether ``caller``'s board holds the case of ``entry``: a functional department the cases where its
    part is active; everyone else by area (``in_scope``). The same rule as the store's ``on_board``."""
    if caller.role == Role.DEPARTMENT:
        return caller.department in entry.departments
    return in_scope(caller.role, caller.area, entry.owners)


def for_caller(caller: Identity, entry: Entry, lang: str = "en") -> str | None:
    """What ``caller`` is sent of ``entry``: the ``case`` event (in ``lang``, ``en`` or ``zh``) if its board
    holds the case now; the ``removed`` event if the step moved the case out of the caller's area or ended
    the caller's department's part; else nothing."""
    if visible(caller, entry):
        return entry.zh if lang == "zh" and entry.zh else entry.text
    if caller.role == Role.DEPARTMENT:
        return entry.removed if caller.department in entry.left_departments else None
    if entry.left is not None and in_scope(caller.role, caller.area, entry.left):
        return entry.removed
    return None


def case_event(row: tuple, now, view: Callable) -> Entry:
    """The feed's entry for a timeline row (``CaseStore.steps_after``'s ``(row id, step, case, report,
    updated_at, left, left_departments)``) at ``now``, the case shown by ``view(step, case, report,
    updated_at, now)``."""
    row_id, step, case, report, updated, left, left_departments = row
    shown = view(step, case, report, updated, now)

    def rendered(lang: str) -> str:
        return event("case", {"case": shown, "step": {
            "id": row_id, "at": isoformat(step.at), "type": str(step.type), "level": int(step.level),
            "actor": step.actor, "note": note_text(step.note, lang)}}, row_id)

    text = rendered("en")
    zh = rendered("zh") if note_message(step.note) is not None else ""
    removed = (event("removed", {"case_id": case.id, "type": str(step.type)}, row_id)
               if left is not None or left_departments else "")
    return Entry(row_id, case.owners, frozenset(a.department for a in case.assignments if a.active), text, left,
                 removed, left_departments, zh)


class Tailer:
    """Reads the timeline for every stream of this process: ``read_after(after, limit)`` → the rows after
    a row id, oldest first, unscoped (``(row id, step, case, report, updated_at)``); ``newest()`` → the
    newest row id; ``render(row, now)`` → an ``Entry``. Polls only while a stream is subscribed, every
    ``poll`` seconds (at once after a full batch), or sooner when ``wake`` (a ``threading.Event`` set by
    this process's commits on the timeline's database, ``shared.uow.on_commit``) is set, ``gap`` seconds at
    least apart; keeps the newest ``keep`` entries, and all those read in the last ``hold`` seconds.
    ``listen(heard, stopping)``: starts a thread that calls ``heard()`` when another process commits steps
    (PostgreSQL: ``shared.pgnotify``), run while the tailer runs; it sets ``wake``."""

    def __init__(self, read_after: Callable, newest: Callable[[], int], render: Callable, now: Callable, *,
                 poll: float = POLL, keep: int = REPLAY_LIMIT, batch: int = BATCH, hold: float = HOLD,
                 read_ids: Callable[[list[int]], list] | None = None, wake: threading.Event | None = None,
                 gap: float = WOKEN_GAP, listen: Callable[[Callable[[], None], threading.Event], threading.Thread]
                 | None = None):
        self._read_after, self._newest, self._render, self._now = read_after, newest, render, now
        #: the rows of some ids (sorted), for rows that committed late; by default the range that holds them
        self._read_ids = read_ids or (lambda ids: read_after(ids[0] - 1, ids[-1] - ids[0] + 1))
        self.poll, self.keep, self.batch, self.hold, self.gap = poll, keep, batch, hold, gap
        self._wake = wake
        self._listen = listen if wake is not None else None
        self._condition = threading.Condition()
        self._entries: list[Entry] = []
        self._ids: list[int] = []
        self._read_at: list[float] = []  # when each entry was read (monotonic seconds)
        #: every row with an id above ``floor`` and up to ``newest`` is in memory
        self.floor = 0
        self.newest = 0
        self.polls = 0  # polls completed since the start
        self.subscribers = 0
        self._gaps: dict[int, float] = {}  # a skipped id → until when it is waited for (monotonic)
        self._late: list[tuple[int, Entry]] = []  # (late count, entry) of rows that committed out of order
        self.late_count = 0
        self._thread: threading.Thread | None = None
        self._started = False

    @contextmanager
    def subscribed(self):
        """A stream's subscription: the tailer runs while there is one (its first start reads the newest
        row id, so the caller can say ``hello``)."""
        with self._condition:
            self.subscribers += 1
            if not self._started:
                newest = self._newest()
                self.floor = self.newest = newest
                self._entries, self._ids, self._read_at = [], [], []
                self._started = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="escalation-live-tailer", daemon=True)
                self._thread.start()
            self._condition.notify_all()
        try:
            yield self
        finally:
            with self._condition:
                self.subscribers -= 1
                if self.subscribers == 0 and self._wake is not None:
                    self._wake.set()  # the tailer stops now, not at its next poll, and so does its listener

    def after(self, row_id: int) -> list[Entry]:
        """The entries after ``row_id`` that are in memory, oldest first."""
        with self._condition:
            return self._entries[bisect.bisect_right(self._ids, row_id):]

    def late_since(self, mark: int) -> tuple[int, list[Entry]]:
        """The rows that turned up late (committed after a higher id was read) since ``mark`` (a
        ``late_count``): (the new mark, those entries)."""
        with self._condition:
            return self.late_count, [entry for count, entry in self._late if count > mark]

    def wait(self, row_id: int, timeout: float, *, polls: int | None = None, late: int | None = None) -> None:
        """Wait up to ``timeout`` seconds for a row after ``row_id`` or, given ``late`` (a ``late_count``),
        a late one (or, given ``polls``, for that many polls to have completed)."""
        with self._condition:
            if polls is not None:
                self._condition.wait_for(lambda: self.polls >= polls, timeout)
            else:
                self._condition.wait_for(lambda: self.newest > row_id or (
                    late is not None and self.late_count > late), timeout)

    def _run(self) -> None:
        stopping = threading.Event()
        listener = self._listen(self._wake.set, stopping) if self._listen is not None else None
        try:
            self._follow()
        finally:
            stopping.set()
            if listener is not None:
                listener.join(pgnotify.LISTEN_SECONDS + 1)

    def _follow(self) -> None:
        while True:
            with self._condition:
                if self.subscribers == 0:  # idle: no query until a board connects; then start afresh
                    self._started = False
                    self._thread = None
                    return
                expiry = time.monotonic()
                self._gaps = {gap: until for gap, until in self._gaps.items() if until > expiry}
                gaps = sorted(self._gaps)
                seen = self.newest
            polled_at = time.monotonic()
            try:
                rows = self._read_after(seen, self.batch)
                late = self._read_ids(gaps) if gaps else []
            except Exception:  # a database failover: the streams keep their place and wait
                log.warning("the live feed could not read the timeline; retrying", exc_info=True)
                time.sleep(READ_RETRY)
                continue
            now = self._now()
            entries = [self._render(row, now) for row in rows]
            with self._condition:
                self._note_gaps(seen, [entry.id for entry in entries])
                for entry in (self._render(row, now) for row in late):
                    if entry.id in self._gaps:
                        self._add_late(entry)
                if entries:
                    self._entries.extend(entries)
                    self._ids.extend(e.id for e in entries)
                    self.newest = entries[-1].id
                    self._read_at.extend([time.monotonic()] * len(entries))
                    # the newest ``keep``, and whatever was read in the last ``hold`` seconds: a burst larger
                    # than ``keep`` in one poll must not send every stream to the database
                    cut = len(self._entries) - self.keep
                    cut = bisect.bisect_left(self._read_at, time.monotonic() - self.hold, 0, max(cut, 0))
                    if cut > 0:
                        self.floor = self._ids[cut - 1]
                        del self._entries[:cut], self._ids[:cut], self._read_at[:cut]
                self.polls += 1
                self._condition.notify_all()
            if len(rows) < self.batch:
                if self._wake is None:
                    time.sleep(self.poll)
                else:  # a step committed here (embedded: the consumer's) is read at once, not at the next poll
                    self._wake.wait(self.poll)
                    self._wake.clear()
                    time.sleep(max(0.0, self.gap - (time.monotonic() - polled_at)))

    def _note_gaps(self, seen: int, ids: list[int]) -> None:
        """Remember the ids skipped between ``seen`` and the newest of ``ids`` (rows still committing)."""
        if not ids:
            return
        present = set(ids)
        missing = [i for i in range(seen + 1, ids[-1]) if i not in present] if ids[-1] - seen <= MAX_GAPS * 2 else []
        until = time.monotonic() + GAP_SECONDS
        for gap in missing[:max(MAX_GAPS - len(self._gaps), 0)]:
            self._gaps[gap] = until

    def _add_late(self, entry: Entry) -> None:
        """A row that committed after a higher id was read: in order for the streams behind it, and in
        ``late_since`` for those past it."""
        del self._gaps[entry.id]
        if entry.id > self.floor:
            at = bisect.bisect_left(self._ids, entry.id)
            self._entries.insert(at, entry)
            self._ids.insert(at, entry.id)
            self._read_at.insert(at, self._read_at[at - 1] if at else time.monotonic())
        self.late_count += 1
        self._late.append((self.late_count, entry))
        del self._late[:-LATE_KEEP]


_tailers: dict[int, Tailer] = {}
_tailers_lock = threading.Lock()


def tailer(service, view: Callable) -> Tailer:
    """This process's tailer of ``service``'s timeline (made on first use: after gunicorn's fork)."""
    found = _tailers.get(id(service))
    if found is None:
        with _tailers_lock:
            found = _tailers.get(id(service))
            if found is None:
                def read_after(after: int, limit: int) -> list:
                    with service.uow() as uow:
                        return uow.store.steps_after(None, after, limit)

                def read_ids(ids: list[int]) -> list:
                    with service.uow() as uow:
                        return uow.store.steps_after(None, 0, len(ids), ids=ids)

                def newest() -> int:
                    with service.uow() as uow:
                        return uow.store.last_step_id()

                listen = None
                if service.engine.dialect.name == "postgresql":  # the workers' and the scheduler's steps
                    def listen(heard, stopping):
                        return pgnotify.listening(service.engine, pgnotify.TIMELINE_CHANNEL, heard, stopping,
                                                  what="escalation-live-feed")
                found = _tailers[id(service)] = Tailer(read_after, newest, lambda row, now: case_event(
                    row, now, view), service.clock.now, read_ids=read_ids, wake=on_commit(service.engine),
                    poll=LISTENING_POLL if listen else POLL, gap=LISTENING_GAP if listen else WOKEN_GAP,
                    listen=listen)
    return found


def stream(service, caller: Identity, after: int | None, view: Callable, *, seconds: float = STREAM_SECONDS,
           feed: Tailer | None = None, lang: str = "en") -> Iterator[str]:
    """The events for ``caller`` after row ``after`` (None: from now, announced by ``hello``), the
    system's timeline notes in ``lang`` (``en`` or ``zh``)."""
    feed = feed or tailer(service, view)
    yield f"retry: {RETRY_MS}\n\n"
    with feed.subscribed():
        if after is not None and after > feed.newest:  # from a replica that polled more recently?
            feed.wait(after, feed.poll * 3 + 1, polls=feed.polls + 2)
        newest = feed.newest
        if after is None or after > newest:
            after = newest
            yield event("hello", {"last_event_id": newest}, newest)
        elif newest - after > REPLAY_LIMIT:
            after = newest
            yield event("reset", {"last_event_id": newest, "reason": "more was missed than is replayed"}, newest)
        started = last_write = time.monotonic()
        late_mark = feed.late_count
        while (left := seconds - (time.monotonic() - started)) > 0:
            late_mark, late = feed.late_since(late_mark)
            for entry in late:  # passed already: the in-order path misses it
                if entry.id <= after and (text := for_caller(caller, entry, lang)):
                    yield text
                    last_write = time.monotonic()
            if after < feed.floor:  # older than what the tailer holds: this client's own catch-up query
                floor = feed.floor
                now = service.clock.now()
                with service.uow() as uow:
                    rows = uow.store.steps_after(caller, after, REPLAY_LIMIT)
                for row in rows:
                    entry = case_event(row, now, view)
                    after = entry.id
                    if text := for_caller(caller, entry, lang):
                        yield text
                        last_write = time.monotonic()
                if len(rows) < REPLAY_LIMIT:
                    after = max(after, floor)
                continue
            entries = feed.after(after)
            for entry in entries:
                after = entry.id
                if text := for_caller(caller, entry, lang):
                    yield text
                    last_write = time.monotonic()
            if entries:
                continue
            if time.monotonic() - last_write >= KEEPALIVE:
                yield ": keepalive\n\n"
                last_write = time.monotonic()
            feed.wait(after, min(left, KEEPALIVE - (time.monotonic() - last_write)), late=late_mark)
