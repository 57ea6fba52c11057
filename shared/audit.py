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
rows reordered or inserted (``seq`` out of order, or a ``previous_hash`` that does not link).

**A key outside the database.** The hash chain alone can be extended or rewritten by anyone who can
write the table. So each row also carries ``mac = HMAC-SHA256(key, hash)`` (``row_mac``) under the audit
key (``GRIDCASE_AUDIT_KEY``), which the writing service holds and the database never sees: a row
appended or rewritten without the key does not verify. And a ``Checkpoint`` — ``seq``, ``hash`` and the
time of the chain's last row, signed with the same key (``sign_checkpoint``) and written on a schedule
to a file or a webhook the database cannot rewrite — reveals a chain cut short (its lost tail rows) or
rewritten by someone who had the key. What nothing reveals: rows deleted from the tail after the last
checkpoint, together with their timeline rows; the checkpoint interval bounds that window.

**The timeline is chained too.** Every audit row with a ``case_id`` is one timeline step of that case,
and its ``detail`` holds the rest of the step (``step_detail``: ``level``, ``note``, ``scheduled_at``).
``timeline_difference`` reads a case's timeline rows (by row id) beside its audit rows (by ``seq``) and
names the first timeline row edited, deleted, inserted or moved: the case view, the live feed and the
statistics all read the timeline, so it must be what the chain says. (Rows written before
``scheduled_at`` was recorded compare without it.)
"""
from __future__ import annotations

import collections
import difflib
import hashlib
import hmac
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64


def utc_text(at: datetime) -> str:
    """``at`` as the canonical form writes it: UTC, six fractional digits, ``Z`` (aware times only)."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(previous_hash: str, seq: int, at: datetime, actor: str, action: str, case_id: str | None,
              detail: Mapping) -> bytes:
    """The bytes that are hashed (see the module docstring). ``at`` must be timezone-aware."""
    document = {"action": action, "actor": actor, "at": utc_text(at),
                "case_id": case_id, "detail": dict(detail), "previous_hash": previous_hash, "seq": int(seq)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def entry_hash(previous_hash: str, seq: int, at: datetime, actor: str, action: str, case_id: str | None,
               detail: Mapping) -> str:
    """SHA-256 (hex) of the canonical form of one row."""
    return hashlib.sha256(canonical(previous_hash, seq, at, actor, action, case_id, detail)).hexdigest()


def row_mac(key: bytes, row_hash: str) -> str:
    """HMAC-SHA256 (hex) of a row's ``hash`` (its ASCII hex digits) under the audit ``key``."""
    return hmac.new(key, row_hash.encode("ascii"), hashlib.sha256).hexdigest()


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
    mac: str | None = None  # row_mac(key, hash); None when written without a key


def append(previous: Entry | None, *, at: datetime, actor: str, action: str, case_id: str | None,
           detail: Mapping, key: bytes | None = None) -> Entry:
    """The row that follows ``previous`` (None: the first row of the chain), signed with ``key``."""
    seq = previous.seq + 1 if previous else 1
    previous_hash = previous.hash if previous else GENESIS
    digest = entry_hash(previous_hash, seq, at, actor, action, case_id, detail)
    return Entry(seq, at, actor, action, case_id, detail, previous_hash, digest,
                 row_mac(key, digest) if key is not None else None)


def step_detail(level: int, note: str, scheduled_at: datetime | None) -> dict:
    """The ``detail`` of the audit row of a timeline step: what the row's other columns do not hold."""
    return {"level": int(level), "note": note, "scheduled_at": utc_text(scheduled_at) if scheduled_at else None}


@dataclass(frozen=True)
class Checkpoint:
    """The last row's ``seq`` and ``hash`` at some moment, to be kept outside the database; signed:
    ``at`` (when it was taken) and ``mac``, HMAC-SHA256 under the audit key of ``checkpoint_form``."""

    seq: int
    hash: str
    at: datetime | None = None
    mac: str | None = None

    def to_dict(self) -> dict:
        """``{"seq", "hash"}``, and ``"at"`` (ISO 8601 UTC) and ``"mac"`` when signed: one JSON line."""
        out = {"seq": self.seq, "hash": self.hash}
        if self.at is not None:
            out["at"] = utc_text(self.at)
        if self.mac is not None:
            out["mac"] = self.mac
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Checkpoint:
        """The inverse of ``to_dict``; ValueError naming the field for anything else."""
        if not isinstance(data, Mapping):
            raise ValueError("a checkpoint is a JSON object")
        seq, digest, at, mac = data.get("seq"), data.get("hash"), data.get("at"), data.get("mac")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError("seq must be a non-negative integer")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("hash must be 64 hex digits")
        if at is not None:
            try:
                at = datetime.fromisoformat(at) if isinstance(at, str) else None
            except ValueError:
                at = None
            if at is None or at.tzinfo is None:
                raise ValueError("at must be an ISO 8601 time with its offset")
        if mac is not None and not isinstance(mac, str):
            raise ValueError("mac must be a string")
        return cls(seq, digest, at, mac)


def checkpoint_form(seq: int, row_hash: str, at: datetime) -> bytes:
    """What a checkpoint's ``mac`` signs: ``{"at", "hash", "seq"}`` as compact sorted UTF-8 JSON."""
    return json.dumps({"at": utc_text(at), "hash": row_hash, "seq": int(seq)}, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def sign_checkpoint(key: bytes, mark: Checkpoint, at: datetime) -> Checkpoint:
    """``mark`` (a chain's last ``seq`` and ``hash``) taken at ``at`` and signed with ``key``."""
    return Checkpoint(mark.seq, mark.hash, at,
                      hmac.new(key, checkpoint_form(mark.seq, mark.hash, at), hashlib.sha256).hexdigest())


def signed_by(key: bytes, mark: Checkpoint) -> bool:
    """Whether ``mark`` carries a signature that ``key`` made (constant-time comparison)."""
    if mark.at is None or mark.mac is None:
        return False
    expected = hmac.new(key, checkpoint_form(mark.seq, mark.hash, mark.at), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mark.mac)


@dataclass(frozen=True)
class Break:
    """Where a chain stops being trustworthy: the first bad (or missing) ``seq``, and why."""

    seq: int
    reason: str


def _getter(row):
    if isinstance(row, Mapping):
        return lambda name: row.get(name)
    return lambda name: getattr(row, name, None)


def find_break(rows: Iterable, *, after: Checkpoint | None = None,
               against: Checkpoint | Iterable[Checkpoint] | None = None, key: bytes | None = None) -> Break | None:
    """The first problem in ``rows`` (``Entry`` objects, rows with those attributes, or mappings),
    read in storage order from row 1 — or, with ``after``, from the row after that checkpoint.

    With ``against`` (one checkpoint or several), the chain must also still hold each checkpoint (a
    row ``seq`` with its ``hash``): a chain rewritten at or before one breaks at its ``seq``; a chain
    cut short before it breaks at its first missing row. With ``key``, every row's ``mac`` must be
    ``row_mac(key, hash)``: a row appended or rewritten without the key breaks there."""
    marks = [against] if isinstance(against, Checkpoint) else list(against or ())
    held: dict[int, str] = {}
    for mark in sorted(marks, key=lambda m: m.seq):
        if held.setdefault(mark.seq, mark.hash) != mark.hash:
            return Break(mark.seq, "two checkpoints disagree on this row's hash")
    expected, previous = (after.seq + 1, after.hash) if after else (1, GENESIS)
    for row in rows:
        get = _getter(row)
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
        if key is not None:
            mac = get("mac")
            if mac is None:
                return Break(seq, "not signed with the audit key (appended by someone without GRIDCASE_AUDIT_KEY)")
            if not hmac.compare_digest(mac, row_mac(key, get("hash"))):
                return Break(seq, "its MAC does not verify (appended or rewritten without the audit key, "
                                  "or GRIDCASE_AUDIT_KEY is not the key that wrote it)")
        if seq in held and get("hash") != held[seq]:
            return Break(seq, "differs from the checkpoint (rewritten at or before this row)")
        expected, previous = seq + 1, get("hash")
    if held and expected <= max(held):
        return Break(expected, "missing (the chain ends before the checkpoint)")
    return None


def verify(rows: Iterable, *, after: Checkpoint | None = None, against=None, key: bytes | None = None) -> int | None:
    """The first tampered or missing ``seq``, or None for an intact chain (see ``find_break``)."""
    problem = find_break(rows, after=after, against=against, key=key)
    return problem.seq if problem else None


def checkpoint(rows: Iterable) -> Checkpoint:
    """The checkpoint of a chain's last row (``Checkpoint(0, GENESIS)`` for an empty chain).
    It does not verify; call ``verify`` first."""
    last = Checkpoint(0, GENESIS)
    for row in rows:
        get = row.__getitem__ if isinstance(row, Mapping) else row.__getattribute__
        last = Checkpoint(get("seq"), get("hash"))
    return last


# -- the timeline beside the chain ------------------------------------------------------------------------

#: The fields of a timeline step, in the order compared (a difference names the first that differs).
STEP_FIELDS = ("at", "type", "level", "actor", "note", "scheduled_at")


@dataclass(frozen=True)
class Difference:
    """The first timeline row of a case that is not what the chain says: the audit row it concerns
    (``seq``; None for a timeline row no audit row accounts for), the timeline row (``row``, its id;
    None for a deleted one) and why."""

    case_id: str
    seq: int | None
    row: int | None
    reason: str

    def describe(self) -> str:
        where = [f"case {self.case_id}"]
        if self.row is not None:
            where.insert(0, f"timeline row {self.row}")
        if self.seq is not None:
            where.append(f"audit seq {self.seq}")
        return f"{', '.join(where)}: {self.reason}"


def _audit_step(row) -> tuple:
    get = _getter(row)
    detail = get("detail") or {}
    return (utc_text(get("at")), get("action"), detail.get("level"), get("actor"), detail.get("note"),
            detail.get("scheduled_at", _UNRECORDED))


def _timeline_step(row) -> tuple:
    get = _getter(row)
    scheduled = get("scheduled_at")
    return (utc_text(get("at")), str(get("type")), int(get("level")), get("actor"), get("note"),
            utc_text(scheduled) if scheduled else None)


_UNRECORDED = object()  # an audit row written before ``scheduled_at`` was part of a step's detail


def _case_difference(case_id: str, audits: list, steps: list) -> Difference | None:
    """The first difference between one case's audit rows (by ``seq``) and timeline rows (by id)."""
    a = [_audit_step(r) for r in audits]
    t = [_timeline_step(r) for r in steps]
    if any(form[-1] is _UNRECORDED for form in a):
        a, t = [form[:-1] for form in a], [form[:-1] for form in t]
    if a == t:
        return None
    if collections.Counter(a) == collections.Counter(t):  # the same steps in another order
        k = next(i for i, (x, y) in enumerate(zip(a, t, strict=True)) if x != y)
        return Difference(case_id, _getter(audits[k])("seq"), _getter(steps[k])("id"),
                          f"holds step {a.index(t[k]) + 1} of the case where step {k + 1} belongs (reordered)")
    tag, i1, _, j1, _ = next(op for op in difflib.SequenceMatcher(None, a, t, autojunk=False).get_opcodes()
                             if op[0] != "equal")
    seq = _getter(audits[i1])("seq") if i1 < len(audits) else None
    row = _getter(steps[j1])("id") if j1 < len(steps) else None
    if tag == "delete":
        return Difference(case_id, seq, None, f"step {i1 + 1} of the case is missing from the timeline (deleted)")
    if tag == "insert":
        return Difference(case_id, None, row, "no audit row holds this step (inserted outside the trail)")
    fields = [name for name, x, y in zip(STEP_FIELDS, a[i1], t[j1], strict=False) if x != y]
    return Difference(case_id, seq, row, f"{', '.join(fields)} differ{'s' if len(fields) == 1 else ''} "
                      "from the audit row (edited)")


def _by_case(rows: Iterable, what: str) -> Iterator[tuple[str, list]]:
    last = None
    for case_id, group in itertools.groupby(rows, lambda r: _getter(r)("case_id")):
        if last is not None and case_id <= last:
            raise ValueError(f"the {what} rows are not sorted by case id (code-point order)")
        last = case_id
        yield case_id, list(group)


@dataclass(frozen=True)
class TimelineCheck:
    """What ``timeline_difference`` found: the first difference (by audit ``seq``, then timeline row),
    how many cases differ, and how many timeline rows were compared."""

    first: Difference | None
    cases: int
    rows: int


def timeline_difference(audit_rows: Iterable, timeline_rows: Iterable) -> TimelineCheck:
    """Compare each case's timeline with the chain: ``audit_rows`` are the audit rows that have a
    ``case_id`` (attributes or keys ``seq``, ``at``, ``actor``, ``action``, ``case_id``, ``detail``),
    ``timeline_rows`` the timeline (``id``, ``case_id``, ``at``, ``type``, ``level``, ``actor``,
    ``note``, ``scheduled_at``); both sorted by case id in code-point order, then by ``seq`` and ``id``.
    Streams both (one case in memory at a time); ValueError if they are not so sorted."""
    audits, timeline = _by_case(audit_rows, "audit"), _by_case(timeline_rows, "timeline")
    a, t = next(audits, None), next(timeline, None)
    first, cases, rows = None, 0, 0

    def note(found: Difference | None):
        nonlocal first, cases
        if found is None:
            return
        cases += 1
        rank = (found.seq if found.seq is not None else float("inf"), found.row or 0)
        if first is None or rank < (first.seq if first.seq is not None else float("inf"), first.row or 0):
            first = found

    while a is not None or t is not None:
        if t is None or (a is not None and a[0] < t[0]):
            note(_case_difference(a[0], a[1], []))
            a = next(audits, None)
        elif a is None or t[0] < a[0]:
            rows += len(t[1])
            note(_case_difference(t[0], [], t[1]))
            t = next(timeline, None)
        else:
            rows += len(t[1])
            note(_case_difference(a[0], a[1], t[1]))
            a, t = next(audits, None), next(timeline, None)
    return TimelineCheck(first, cases, rows)
