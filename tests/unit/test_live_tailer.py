"""The live feed's tailer: one read of the timeline per poll for every stream of a process, each stream
filtered by its caller's scope, resumable by ``Last-Event-ID`` from memory, from the database for what
memory no longer holds, and from a replica that polled more recently. A timeline in memory stands in for
the database."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from types import SimpleNamespace

from services.escalation import live
from shared.auth import Identity
from shared.owners import Owners


@dataclass(frozen=True)
class Row:
    id: int
    grid: str
    departments: tuple[str, ...] = ()


class Timeline:
    """Rows by id; counts the tailer's reads and the streams' own catch-up reads."""

    def __init__(self):
        self.rows: list[Row] = []
        self.pending: list[Row] = []
        self.reads = 0
        self.catch_ups = 0
        self.lock = threading.Lock()

    def add(self, grid: str, departments: tuple[str, ...] = ()) -> int:
        with self.lock:
            self.rows.append(Row(len(self.rows) + len(self.pending) + 1, grid, departments))
            return self.rows[-1].id

    def committing(self, grid: str) -> Row:
        """A row whose id is taken but whose transaction has not committed yet (``commit`` shows it)."""
        with self.lock:
            row = Row(len(self.rows) + len(self.pending) + 1, grid)
            self.pending.append(row)
            return row

    def commit(self, row: Row) -> None:
        with self.lock:
            self.pending.remove(row)
            self.rows = sorted([*self.rows, row], key=lambda r: r.id)

    def read_after(self, after: int, limit: int) -> list:
        with self.lock:
            self.reads += 1
            return [r for r in self.rows if r.id > after][:limit]

    def newest(self) -> int:
        with self.lock:
            return self.rows[-1].id if self.rows else 0


def render(row: Row, now) -> live.Entry:
    return live.Entry(row.id, Owners.from_ids({"grid": row.grid, "station": "S1"}), frozenset(row.departments),
                      live.event("case", {"grid": row.grid}, row.id))


class Service:
    """What ``live.stream`` needs of the service for a catch-up read: ``uow()`` and ``clock``."""

    def __init__(self, timeline: Timeline):
        self.timeline = timeline
        self.clock = SimpleNamespace(now=lambda: None)

    def uow(self):
        timeline = self.timeline

        class Store:
            def steps_after(self, caller, after, limit):
                timeline.catch_ups += 1
                return [r for r in timeline.read_after(after, limit) if caller.sees(render(r, None).owners)]

        class Uow:
            store = Store()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False
        return Uow()


def tailer(timeline: Timeline) -> live.Tailer:
    return live.Tailer(timeline.read_after, timeline.newest, render, lambda: None, poll=0.02)


def collect(feed, timeline, caller, after, seconds, out: list) -> threading.Thread:
    def run():
        for text in live.stream(Service(timeline), caller, after, None, seconds=seconds, feed=feed):
            out.append(text)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def ids(texts: list[str]) -> list[int]:
    return [int(t.split("\n", 1)[0][4:]) for t in texts if t.startswith("id: ") and "event: case" in t]


def test_fifty_streams_share_one_read_per_poll_and_each_gets_only_its_own_grid(monkeypatch):
    monkeypatch.setattr(live, "case_event", lambda row, *_: render(row, None))
    timeline = Timeline()
    for _ in range(3):
        timeline.add("G1")
    feed = tailer(timeline)
    outs = [[] for _ in range(50)]
    threads = [collect(feed, timeline, Identity("grid_worker", f"w{i}", area="G1" if i % 2 else "G2"), None, 1.0,
                       outs[i]) for i in range(50)]
    while feed.subscribers < 50:
        threading.Event().wait(0.01)
    first = timeline.add("G1")
    second = timeline.add("G2")
    for thread in threads:
        thread.join(5)
    polls = feed.polls
    assert polls <= 1.2 / 0.02 + 5 and timeline.reads <= polls + 1  # one read per poll, not one per stream
    for i, out in enumerate(outs):
        assert out[1].startswith("id: 3\nevent: hello")
        assert ids(out) == ([first] if i % 2 else [second])
    assert timeline.catch_ups == 0


def test_a_department_sees_the_cases_assigned_to_it_and_no_others():
    entry = render(Row(1, "G1", ("water",)), None)
    assert live.visible(Identity("department", "d", department="water"), entry)
    assert not live.visible(Identity("department", "d", department="power"), entry)
    assert live.visible(Identity("command", "c"), entry) and not live.visible(Identity("station", "s"), entry)


def test_a_client_resumes_from_memory_or_from_its_own_read_of_what_memory_no_longer_holds(monkeypatch):
    monkeypatch.setattr(live, "case_event", lambda row, *_: render(row, None))
    timeline = Timeline()
    feed = live.Tailer(timeline.read_after, timeline.newest, render, lambda: None, poll=0.02, keep=5, hold=0)
    holder: list[str] = []
    thread = collect(feed, timeline, Identity("command", "c"), None, 1.0, holder)  # keeps the tailer running
    while feed.subscribers < 1:
        threading.Event().wait(0.01)
    for _ in range(12):
        timeline.add("G1")
    while feed.newest < 12:
        threading.Event().wait(0.01)
    assert feed.floor == 7  # rows 8-12 in memory
    from_memory, from_database = [], []
    collect(feed, timeline, Identity("command", "c"), 9, 0.2, from_memory).join(5)
    catch_ups = timeline.catch_ups  # the holder's own: it fell behind what memory kept (hold=0)
    collect(feed, timeline, Identity("command", "c"), 2, 0.2, from_database).join(5)
    thread.join(5)
    assert ids(from_memory) == [10, 11, 12]
    assert ids(from_database) == list(range(3, 13)) and timeline.catch_ups == catch_ups + 1


def test_a_burst_larger_than_memory_keeps_still_reaches_every_stream_from_memory(monkeypatch):
    monkeypatch.setattr(live, "case_event", lambda row, *_: render(row, None))
    timeline = Timeline()
    feed = live.Tailer(timeline.read_after, timeline.newest, render, lambda: None, poll=0.02, keep=5)
    outs = [[] for _ in range(10)]
    threads = [collect(feed, timeline, Identity("command", "c"), None, 0.6, out) for out in outs]
    while feed.subscribers < 10:
        threading.Event().wait(0.01)
    for _ in range(40):
        timeline.add("G1")
    for thread in threads:
        thread.join(5)
    assert all(ids(out) == list(range(1, 41)) for out in outs) and timeline.catch_ups == 0


def test_a_client_ahead_of_this_process_waits_for_its_next_poll_and_a_bogus_id_gets_hello(monkeypatch):
    monkeypatch.setattr(live, "case_event", lambda row, *_: render(row, None))
    timeline = Timeline()
    feed = tailer(timeline)
    holder: list[str] = []
    thread = collect(feed, timeline, Identity("command", "c"), None, 1.0, holder)
    while feed.polls < 1:
        threading.Event().wait(0.01)
    timeline.add("G1")  # seen by the other replica, not yet by this one
    seen_there = timeline.add("G1")
    later = []
    resumed = collect(feed, timeline, Identity("command", "c"), seen_there, 0.5, later)
    after_it = timeline.add("G1")
    resumed.join(5)
    assert "event: hello" not in "".join(later) and ids(later) == [after_it]
    bogus: list[str] = []
    collect(feed, timeline, Identity("command", "c"), 10_000, 0.2, bogus).join(5)
    thread.join(5)
    assert bogus[1].startswith(f"id: {after_it}\nevent: hello")


def test_the_tailer_reads_nothing_while_no_stream_is_open(monkeypatch):
    monkeypatch.setattr(live, "case_event", lambda row, *_: render(row, None))
    timeline = Timeline()
    feed = tailer(timeline)
    collect(feed, timeline, Identity("command", "c"), None, 0.2, []).join(5)
    threading.Event().wait(0.5)  # the tailer notices and stops
    reads = timeline.reads
    threading.Event().wait(0.3)
    assert timeline.reads == reads


def test_a_row_that_commits_after_a_higher_one_was_read_still_reaches_every_stream(monkeypatch):
    """PostgreSQL hands out timeline ids from a sequence: a transaction holding id 2 can commit after id 3
    was read. Every stream gets row 2: in order if it had not reached it, late if it had passed it."""
    monkeypatch.setattr(live, "case_event", lambda row, *_: render(row, None))
    timeline = Timeline()
    timeline.add("G1")
    feed = tailer(timeline)
    out: list[str] = []
    thread = collect(feed, timeline, Identity("command", "c"), None, 1.5, out)
    while feed.subscribers < 1:
        threading.Event().wait(0.01)
    slow = timeline.committing("G1")  # id 2, still committing
    third = timeline.add("G1")  # id 3 commits first
    while feed.newest < third:
        threading.Event().wait(0.01)
    timeline.commit(slow)
    thread.join(5)
    assert sorted(ids(out)) == [slow.id, third] and ids(out).count(slow.id) == 1
    behind: list[str] = []  # a client that resumes from row 1 gets both, in order, from memory
    collect(feed, timeline, Identity("command", "c"), 1, 0.3, behind).join(5)
    assert ids(behind) == [slow.id, third]


def test_an_id_that_never_commits_is_forgotten_after_a_while(monkeypatch):
    monkeypatch.setattr(live, "case_event", lambda row, *_: render(row, None))
    monkeypatch.setattr(live, "GAP_SECONDS", 0.1)
    timeline = Timeline()
    feed = tailer(timeline)
    out: list[str] = []
    thread = collect(feed, timeline, Identity("command", "c"), None, 0.6, out)
    while feed.subscribers < 1:
        threading.Event().wait(0.01)
    timeline.committing("G1")  # rolled back: never shows
    timeline.add("G1")
    thread.join(5)
    assert feed._gaps == {} and ids(out) == [2]


def test_a_commit_in_this_process_wakes_the_tailer_at_once_instead_of_at_its_next_poll():
    """A board learnt of a report only at the tailer's next poll (0.4 s apart): p99 0.6 s report → row."""
    import time

    timeline = Timeline()
    committed = threading.Event()  # what shared.uow.on_commit gives: set after each commit here
    feed = live.Tailer(timeline.read_after, timeline.newest, render, lambda: None, poll=30.0, wake=committed)
    with feed.subscribed():
        feed.wait(0, 10, polls=feed.polls + 1)  # the first look, then the long sleep
        started = time.monotonic()
        row = timeline.add("G1")
        committed.set()
        feed.wait(row - 1, 20)
        took = time.monotonic() - started
    committed.set()  # the tailer notices there is no stream left and stops
    assert feed.newest == row, "the row was not read"
    assert took < 10, f"read after {took:.1f} s: at the next poll, not at the commit"
