"""The audit trail's hash chain, as pure functions (the table and the ``gridcase audit`` commands use them).

Each action is one row: ``seq`` (1, 2, 3, … with no gap), ``at`` (server UTC time), ``actor``,
``action``, ``case_id`` (or None), ``detail`` (a JSON object), ``previous_hash`` (the ``hash`` of
row ``seq - 1``; ``GENESIS`` for row 1) and ``hash = entry_hash(previous_hash, seq, at, actor,
action, case_id, detail)``.

**Canonical form** (what is hashed): the UTF-8 bytes of the JSON object

    {"action": …, "actor": …, "at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "case_id": … or null,
     "detail": {…}, "previous_hash": "<64 hex>", "seq": <integer>}

with keys sorted at every depth, no whitespace (separators ``,`` and ``:``), non-ASCII characters
written as themselves (not ``\\u`` escapes), NaN and infinities refused; ``at`` converted to UTC and
always written with six fractional digits. The hash is SHA-256 of those bytes, as 64 lower-case hex
digits. Anyone can recompute it with a JSON library and ``sha256``.

What is detected: an edited row (its hash no longer matches), a deleted row (a gap in ``seq``),
rows reordered or inserted (``seq`` out of order, or a ``previous_hash`` that does not link). A
chain rewritten from the start with fresh hashes is consistent in itself; only a ``Checkpoint``
(``seq`` and ``hash`` exported earlier and kept elsewhere) reveals it, as it reveals lost tail rows.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64


def canonical(previous_hash: str, seq: int, at: datetime, actor: str, action: str, case_id: str | None,
              detail: Mapping) -> bytes:
    """The bytes that are hashed (see the module docstring). ``at`` must be timezone-aware."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    document = {"action": action, "actor": actor, "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "case_id": case_id, "detail": dict(detail), "previous_hash": previous_hash, "seq": int(seq)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def entry_hash(previous_hash: str, seq: int, at: datetime, actor: str, action: str, case_id: str | None,
               detail: Mapping) -> str:
    """SHA-256 (hex) of the canonical form of one row."""
    return hashlib.sha256(canonical(previous_hash, seq, at, actor, action, case_id, detail)).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    at: datetime
    actor: str
    action: str
    case_id: str | None
    detail: Mapping
    previous_hash: str
    hash: str


def append(previous: Entry | None, *, at: datetime, actor: str, action: str, case_id: str | None,
           detail: Mapping) -> Entry:
    """The row that follows ``previous`` (None: the first row of the chain)."""
    seq = previous.seq + 1 if previous else 1
    previous_hash = previous.hash if previous else GENESIS
    return Entry(seq, at, actor, action, case_id, detail, previous_hash,
                 entry_hash(previous_hash, seq, at, actor, action, case_id, detail))


@dataclass(frozen=True)
class Checkpoint:
    """The last row's ``seq`` and ``hash`` at some moment, to be kept outside the database."""

    seq: int
    hash: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Checkpoint:
        return cls(int(data["seq"]), str(data["hash"]))


@dataclass(frozen=True)
class Break:
    """Where a chain stops being trustworthy: the first bad (or missing) ``seq``, and why."""

    seq: int
    reason: str


def find_break(rows: Iterable, *, after: Checkpoint | None = None,
               against: Checkpoint | None = None) -> Break | None:
    """The first problem in ``rows`` (``Entry`` objects, rows with those attributes, or mappings),
    read in storage order from row 1 — or, with ``after``, from the row after that checkpoint.

    With ``against``, the chain must also still hold that checkpoint (a row ``against.seq`` with
    ``against.hash``): a chain rewritten at or before it breaks at ``against.seq``; a chain cut
    short before it breaks at its first missing row."""
    expected, previous = (after.seq + 1, after.hash) if after else (1, GENESIS)
    for row in rows:
        get = row.__getitem__ if isinstance(row, Mapping) else row.__getattribute__
        seq = get("seq")
        if seq > expected:
            return Break(expected, "missing (deleted)")
        if seq < expected:
            return Break(seq, "out of order, duplicated or inserted")
        if get("previous_hash") != previous:
            return Break(seq, "does not follow the row before (reordered or inserted)")
        if entry_hash(previous, seq, get("at"), get("actor"), get("action"), get("case_id"),
                      get("detail")) != get("hash"):
            return Break(seq, "edited")
        if against is not None and seq == against.seq and get("hash") != against.hash:
            return Break(seq, "differs from the checkpoint (rewritten at or before this row)")
        expected, previous = seq + 1, get("hash")
    if against is not None and expected <= against.seq:
        return Break(expected, "missing (the chain ends before the checkpoint)")
    return None


def verify(rows: Iterable, *, after: Checkpoint | None = None, against: Checkpoint | None = None) -> int | None:
    """The first tampered or missing ``seq``, or None for an intact chain (see ``find_break``)."""
    problem = find_break(rows, after=after, against=against)
    return problem.seq if problem else None


def checkpoint(rows: Iterable) -> Checkpoint:
    """The checkpoint of a chain's last row (``Checkpoint(0, GENESIS)`` for an empty chain).
    It does not verify; call ``verify`` first."""
    last = Checkpoint(0, GENESIS)
    for row in rows:
        get = row.__getitem__ if isinstance(row, Mapping) else row.__getattribute__
        last = Checkpoint(get("seq"), get("hash"))
    return last
