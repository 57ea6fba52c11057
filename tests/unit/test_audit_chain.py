"""The audit trail's hash chain: every kind of tampering is named by the first bad row."""
import collections
import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.audit import (
    GENESIS,
    Break,
    Checkpoint,
    Difference,
    TimelineCheck,
    append,
    canonical,
    checkpoint,
    entry_hash,
    find_break,
    row_mac,
    sign_checkpoint,
    signed_by,
    step_detail,
    timeline_difference,
    verify,
)

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


# -- the key ---------------------------------------------------------------------------------------------

KEY = b"k" * 32


def signed_chain(length=6):
    rows, previous = [], None
    for i in range(length):
        previous = append(previous, at=T0 + timedelta(minutes=i), actor="u", action="acknowledge", case_id="c0",
                          detail={"note": str(i)}, key=KEY)
        rows.append(previous)
    return rows


def test_each_row_carries_an_hmac_of_its_hash_under_the_key():
    row = signed_chain(1)[0]
    assert row.mac == hmac.new(KEY, row.hash.encode(), hashlib.sha256).hexdigest() == row_mac(KEY, row.hash)
    assert find_break(signed_chain(), key=KEY) is None


def test_a_row_appended_without_the_key_is_named_even_with_a_correct_hash():
    rows = signed_chain()
    rows.append(append(rows[-1], at=T0, actor="mallory", action="close", case_id="c0", detail={}))
    assert verify(rows) is None, "consistent without the key"
    assert find_break(rows, key=KEY) == Break(7, "not signed with the audit key (appended by someone without "
                                                 "GRIDCASE_AUDIT_KEY)")
    rows[-1] = append(rows[-2], at=T0, actor="mallory", action="close", case_id="c0", detail={}, key=b"x" * 32)
    assert find_break(rows, key=KEY).seq == 7 and "MAC does not verify" in find_break(rows, key=KEY).reason


def test_a_signed_checkpoint_verifies_only_under_its_key_and_unchanged():
    mark = sign_checkpoint(KEY, checkpoint(signed_chain()), T0)
    assert signed_by(KEY, mark) and not signed_by(b"y" * 32, mark)
    assert Checkpoint.from_dict(json.loads(json.dumps(mark.to_dict()))) == mark
    assert not signed_by(KEY, dataclasses.replace(mark, seq=7))
    assert not signed_by(KEY, dataclasses.replace(mark, at=T0 + timedelta(seconds=1)))
    assert not signed_by(KEY, Checkpoint(mark.seq, mark.hash))  # unsigned


@pytest.mark.parametrize("data, field", [({"seq": "1", "hash": GENESIS}, "seq"), ({"seq": 1, "hash": "x"}, "hash"),
                                         ({"seq": 1, "hash": GENESIS, "at": "yesterday"}, "at"),
                                         ({"seq": 1, "hash": GENESIS, "at": "2026-01-05T09:00:00"}, "at"),
                                         ([], "JSON object")])
def test_a_malformed_checkpoint_is_refused_naming_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        Checkpoint.from_dict(data)


def test_several_checkpoints_are_all_held():
    rows = chain(8)
    marks = [checkpoint(rows[:3]), checkpoint(rows[:6])]
    assert find_break(rows, against=marks) is None
    assert find_break(rows[:5], against=marks).seq == 6
    assert find_break(rows, against=[*marks, Checkpoint(3, GENESIS)]).reason == \
        "two checkpoints disagree on this row's hash"


# -- the timeline beside the chain -------------------------------------------------------------------------

Row = collections.namedtuple("Row", "id case_id at type level actor note scheduled_at")


def trail_and_timeline():
    """Two cases, three steps each, interleaved in the chain; the timeline rows that match them."""
    audit_rows, rows, previous = [], [], None
    for i in range(6):
        case, at = f"c{i % 2}", T0 + timedelta(minutes=i)
        scheduled = at if i == 2 else None
        previous = append(previous, at=at, actor=f"u{i}", action="acknowledge", case_id=case,
                          detail=step_detail(1 + i // 2, f"note {i}", scheduled))
        audit_rows.append(previous)
        rows.append(Row(i + 1, case, at, "acknowledge", 1 + i // 2, f"u{i}", f"note {i}", scheduled))
    by_case = lambda items, k: sorted(items, key=lambda r: (r.case_id, k(r)))  # noqa: E731
    return by_case(audit_rows, lambda r: r.seq), by_case(rows, lambda r: r.id)


def test_a_timeline_that_matches_the_chain_has_no_difference():
    audit_rows, rows = trail_and_timeline()
    assert timeline_difference(audit_rows, rows) == TimelineCheck(None, 0, 6)


@pytest.mark.parametrize("field, value", [("at", T0 - timedelta(days=1)), ("type", "closed"), ("level", 4),
                                          ("actor", "mallory"), ("note", "all fine"), ("scheduled_at", T0)])
def test_an_edited_timeline_field_is_named(field, value):
    audit_rows, rows = trail_and_timeline()
    index = next(i for i, r in enumerate(rows) if r.id == 5)
    rows[index] = rows[index]._replace(**{field: value})
    first = timeline_difference(audit_rows, rows).first
    assert first == Difference("c0", 5, 5, f"{field} differs from the audit row (edited)")


def test_a_deleted_timeline_row_is_named_by_its_audit_row():
    audit_rows, rows = trail_and_timeline()
    rows = [r for r in rows if r.id != 3]
    assert timeline_difference(audit_rows, rows).first == Difference(
        "c0", 3, None, "step 2 of the case is missing from the timeline (deleted)")


def test_reordered_timeline_rows_are_named():
    audit_rows, rows = trail_and_timeline()
    a, b = rows[0], rows[1]  # c0's first two steps
    rows[0], rows[1] = b._replace(id=a.id), a._replace(id=b.id)
    assert timeline_difference(audit_rows, rows).first == Difference(
        "c0", 1, 1, "holds step 2 of the case where step 1 belongs (reordered)")


def test_an_inserted_timeline_row_and_a_case_without_audit_rows_are_named():
    audit_rows, rows = trail_and_timeline()
    extra = Row(7, "c0", T0, "closed", 1, "mallory", "", None)
    assert timeline_difference(audit_rows, rows[:3] + [extra] + rows[3:]).first == Difference(
        "c0", None, 7, "no audit row holds this step (inserted outside the trail)")
    stray = Row(8, "c9", T0, "closed", 1, "mallory", "", None)
    check = timeline_difference(audit_rows, rows + [stray])
    assert check.first.case_id == "c9" and check.cases == 1 and check.rows == 7


def test_the_first_difference_is_the_earliest_in_the_chain_and_all_cases_are_counted():
    audit_rows, rows = trail_and_timeline()
    rows = [r._replace(note="x") if r.id in (2, 5) else r for r in rows]
    check = timeline_difference(audit_rows, rows)
    assert (check.first.seq, check.cases) == (2, 2)


def test_rows_written_before_scheduled_at_was_recorded_compare_without_it():
    audit_rows, rows = trail_and_timeline()
    legacy = [dataclasses.replace(r, detail={k: v for k, v in r.detail.items() if k != "scheduled_at"})
              for r in audit_rows]
    assert timeline_difference(legacy, rows).first is None


def test_unsorted_input_is_refused():
    audit_rows, rows = trail_and_timeline()
    with pytest.raises(ValueError, match="sorted"):
        timeline_difference(audit_rows, list(reversed(rows)))
