"""The audit trail's hash chain: every kind of tampering is named by the first bad row."""
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.audit import GENESIS, Checkpoint, append, canonical, checkpoint, entry_hash, find_break, verify

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def chain(length=6, start=None):
    rows, previous = [], start
    for i in range(length):
        previous = append(previous, at=T0 + timedelta(minutes=i), actor=f"user{i % 3}", action="acknowledge",
                          case_id=f"c{i % 2}", detail={"note": f"步骤 {i}", "level": 1 + i % 4})
        rows.append(previous)
    return rows


def test_the_canonical_form_is_sorted_compact_utf8_json_with_microsecond_utc_times():
    at = datetime(2026, 1, 5, 17, 0, tzinfo=timezone(timedelta(hours=8)))
    assert canonical(GENESIS, 1, at, "wang", "resolve", "c1", {"z": 1, "a": "灯"}) == (
        '{"action":"resolve","actor":"wang","at":"2026-01-05T09:00:00.000000Z","case_id":"c1",'
        '"detail":{"a":"灯","z":1},"previous_hash":"' + GENESIS + '","seq":1}').encode()


def test_the_hash_is_sha256_of_the_canonical_form_and_can_be_recomputed_by_anyone():
    row = chain(1)[0]
    document = {"action": row.action, "actor": row.actor, "at": "2026-01-05T09:00:00.000000Z",
                "case_id": row.case_id, "detail": row.detail, "previous_hash": GENESIS, "seq": 1}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert row.hash == hashlib.sha256(text.encode()).hexdigest()


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError):
        entry_hash(GENESIS, 1, datetime(2026, 1, 5), "a", "b", None, {})


def test_an_intact_chain_verifies_in_any_row_shape():
    rows = chain()
    assert verify(rows) is None
    assert verify([dataclasses.asdict(row) for row in rows]) is None
    assert verify([]) is None


def test_an_edited_row_is_named():
    rows = chain()
    rows[3] = dataclasses.replace(rows[3], actor="someone else")
    assert find_break(rows).seq == 4 and find_break(rows).reason == "edited"


def test_an_edited_row_with_a_recomputed_hash_breaks_the_link_of_the_next_row():
    rows = chain()
    forged = dataclasses.replace(rows[2], detail={"note": "nothing happened"})
    rows[2] = dataclasses.replace(forged, hash=entry_hash(forged.previous_hash, forged.seq, forged.at, forged.actor,
                                                          forged.action, forged.case_id, forged.detail))
    assert verify(rows) == 4


def test_a_deleted_row_is_named_as_missing():
    rows = chain()
    del rows[2]
    assert find_break(rows).seq == 3 and "missing" in find_break(rows).reason


def test_reordered_rows_are_detected_at_the_first_out_of_place():
    rows = chain()
    rows[1], rows[2] = rows[2], rows[1]
    assert verify(rows) == 2


def test_renumbered_rows_are_detected():
    rows = chain()
    rows[1], rows[2] = dataclasses.replace(rows[2], seq=2), dataclasses.replace(rows[1], seq=3)
    assert verify(rows) == 2


def test_an_inserted_row_is_detected():
    rows = chain()
    intruder = append(rows[1], at=T0, actor="x", action="close", case_id="c1", detail={})
    assert verify(rows[:2] + [intruder] + rows[2:]) == 3


def test_a_chain_rewritten_from_the_start_is_consistent_but_fails_its_checkpoint():
    rows = chain()
    point = checkpoint(rows)
    assert point == Checkpoint(6, rows[-1].hash)
    forged = chain(6)
    forged[0] = append(None, at=T0, actor="forger", action="acknowledge", case_id="c0", detail={})
    for i in range(1, 6):
        r = rows[i]
        forged[i] = append(forged[i - 1], at=r.at, actor=r.actor, action=r.action, case_id=r.case_id, detail=r.detail)
    assert verify(forged) is None
    assert verify(forged, against=point) == 6
    assert verify(rows, against=point) is None


def test_a_chain_cut_short_fails_its_checkpoint_at_its_first_missing_row():
    rows = chain()
    point = checkpoint(rows)
    assert verify(rows[:4]) is None
    assert verify(rows[:4], against=point) == 5


def test_a_checkpoint_allows_verifying_only_the_rows_after_it():
    rows = chain(8)
    point = checkpoint(rows[:5])
    assert verify(rows[5:], after=point) is None
    assert verify(rows[6:], after=point) == 6
    assert Checkpoint.from_dict(point.to_dict()) == point


@given(st.integers(min_value=1, max_value=12), st.data())
def test_any_single_edit_of_any_field_is_named_by_its_row(length, data):
    rows = chain(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1))
    field, value = data.draw(st.sampled_from([("actor", "mallory"), ("action", "close"), ("case_id", "c9"),
                                              ("detail", {"note": "x"}), ("at", T0 - timedelta(days=1))]))
    if getattr(rows[index], field) == value:
        return
    rows[index] = dataclasses.replace(rows[index], **{field: value})
    assert verify(rows) == index + 1
