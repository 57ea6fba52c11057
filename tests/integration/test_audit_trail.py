"""The audit trail in the database and the timeline beside it: ``gridcase audit verify`` names the first
edited, deleted, reordered or inserted audit row or timeline row, a row appended without the audit key,
a checkpoint whose signature does not verify and a chain that no longer holds a signed checkpoint — on
SQLite and PostgreSQL. The scheduler writes the signed checkpoints on its own (to a file or a webhook)."""
from __future__ import annotations

import http.server
import json
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gridcase.cli import main
from services.escalation import bootstrap, handlers
from services.escalation.checkpoints import Checkpoints
from services.escalation.scheduler import Scheduler
from services.escalation.store import audit_log, timeline
from shared import audit
from shared.auth import Identity
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.support.cases import CALENDAR_HOURS_POLICY

OWNERS = events.Owners(grid=events.AreaRef("G1", "g"), station=events.AreaRef("S1", "s"),
                       subcenter=events.AreaRef("C1", "c"), hq=events.AreaRef("HQ", "h"))
KEY = "audit-test-key-" * 3
SECRET = "audit-test-secret-" * 2


class Trail:
    """An escalation database with five cases opened and escalated once, and case c0 acknowledged,
    resolved and failed at verification (reworked): 14 audit rows and 14 timeline rows."""

    def __init__(self, url, tmp_path):
        self.checkpoints = tmp_path / "checkpoints.jsonl"
        self.clock = FakeClock()
        self.settings = Settings(database_urls={"escalation": url}, secret=SECRET, data_dir=tmp_path,
                                 policy_file=str(CALENDAR_HOURS_POLICY), audit_key=KEY,
                                 audit_checkpoints=str(self.checkpoints))
        self.service = bootstrap.build(self.settings, self.clock, web=False)
        self.env = {"GRIDCASE_ESCALATION_DATABASE_URL": url, "GRIDCASE_SECRET": SECRET, "GRIDCASE_AUDIT_KEY": KEY,
                    "GRIDCASE_AUDIT_CHECKPOINTS": str(self.checkpoints), "GRIDCASE_DATA_DIR": str(tmp_path)}
        clock, service = self.clock, self.service
        service.run(handlers.open_cases, [events.CaseDispatched(
            case_id=f"c{i}", number=str(i), category="street_light", severity="normal", reported_at=clock.now(),
            areas_version=1, start_level=Level.GRID, owners=OWNERS) for i in range(5)])
        clock.advance(timedelta(hours=4))
        service.run(handlers.escalate_due, 500)
        station = Identity("station", "zhang", "S1")
        for action, note in (("acknowledge", "on my way"), ("resolve", "lamp replaced")):
            clock.advance(timedelta(minutes=20))
            service.run(handlers.take_action, handlers.TakeAction("c0", action, {"note": note}, station, "*"))
        clock.advance(timedelta(minutes=20))
        service.run(handlers.verify_case, events.CaseVerified(case_id="c0", passed=False, verifier="wang",
                                                              at=clock.now(), note="still dark"))

    def verify(self, *args):
        return CliRunner().invoke(main, ["audit", "verify", *args], env=self.env)

    def rows(self, table, *where):
        with self.service.engine.connect() as db:
            key = table.c.seq if table is audit_log else table.c.id
            return db.execute(sa.select(table).where(*where).order_by(key)).all()

    def execute(self, *statements):
        with self.service.engine.begin() as db:
            for statement in statements:
                db.execute(statement)

    def write_checkpoint(self):
        return Checkpoints(self.service).write()


@pytest.fixture(params=["sqlite", "postgres"])
def trail(request, tmp_path):
    url = f"sqlite:///{tmp_path}/escalation.db" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_url")
    made = Trail(url, tmp_path)
    yield made
    made.service.engine.dispose()


def failure(result) -> str:
    assert result.exit_code == 1, result.output
    return result.output


# -- untouched ---------------------------------------------------------------------------------------------

def test_an_untouched_trail_verifies_with_its_timeline(trail):
    result = trail.verify()
    assert result.exit_code == 0, result.output
    assert "intact: 14 row(s), each signed" in result.output
    assert "the timeline's 14 row(s) match it" in result.output
    assert {r.mac for r in trail.rows(audit_log)} == {audit.row_mac(KEY.encode(), r.hash)
                                                      for r in trail.rows(audit_log)}


def test_each_timeline_row_is_held_whole_by_its_audit_row(trail):
    steps = trail.rows(timeline, timeline.c.case_id == "c0")
    held = [r for r in trail.rows(audit_log) if r.case_id == "c0"]
    assert [(s.at, str(s.type), s.level, s.actor, s.note) for s in steps] == [
        (a.at, a.action, a.detail["level"], a.actor, a.detail["note"]) for a in held]
    escalated = next(a for a in held if a.action == "escalated")
    assert escalated.detail["scheduled_at"] == audit.utc_text(steps[1].scheduled_at)


# -- the audit rows --------------------------------------------------------------------------------------

def test_an_edited_audit_row_is_named(trail):
    trail.execute(audit_log.update().where(audit_log.c.seq == 4).values(actor="someone else"))
    assert "audit chain broken at seq 4: edited" in failure(trail.verify())


def test_a_deleted_audit_row_is_named(trail):
    trail.execute(audit_log.delete().where(audit_log.c.seq == 7))
    assert "audit chain broken at seq 7: missing" in failure(trail.verify())


def test_two_audit_rows_swapped_are_caught(trail):
    rows = {r.seq: r for r in trail.rows(audit_log, audit_log.c.seq.in_([2, 3]))}
    trail.execute(*(audit_log.update().where(audit_log.c.seq == seq).values(
        **{k: v for k, v in rows[other]._asdict().items() if k != "seq"}) for seq, other in ((2, 3), (3, 2))))
    assert "audit chain broken at seq 2" in failure(trail.verify())


def test_any_audit_row_edited_is_named_by_its_seq(trail):
    for row in trail.rows(audit_log):
        trail.execute(audit_log.update().where(audit_log.c.seq == row.seq).values(
            detail={**row.detail, "note": row.detail["note"] + " (amended)"}))
        assert f"audit chain broken at seq {row.seq}: edited" in failure(trail.verify())
        trail.execute(audit_log.update().where(audit_log.c.seq == row.seq).values(detail=row.detail))
    assert trail.verify().exit_code == 0


# -- the timeline ----------------------------------------------------------------------------------------

def test_an_edited_timeline_note_is_named(trail):
    """What the case view, the live feed and the statistics show is checked, not only audit_log."""
    failed = next(r for r in trail.rows(timeline) if r.type == "verified")
    trail.execute(timeline.update().where(timeline.c.id == failed.id).values(note="all fine"))
    out = failure(trail.verify())
    assert f"timeline row {failed.id}, case c0, audit seq 13: note differs from the audit row (edited)" in out
    assert "audit chain broken" not in out  # the chain itself is intact: the difference is the timeline's


def test_a_deleted_failed_verification_is_named(trail):
    failed = next(r for r in trail.rows(timeline) if r.type == "verified")
    trail.execute(timeline.delete().where(timeline.c.id == failed.id))
    assert "case c0, audit seq 13: step 5 of the case is missing from the timeline (deleted)" in failure(
        trail.verify())


def test_reordered_timeline_rows_are_named(trail):
    ack, resolved = (r for r in trail.rows(timeline, timeline.c.case_id == "c0") if r.type in ("acknowledged",
                                                                                                 "resolved"))
    swap = lambda row, other: timeline.update().where(timeline.c.id == row.id).values(  # noqa: E731
        **{k: v for k, v in other._asdict().items() if k != "id"})
    trail.execute(swap(ack, resolved), swap(resolved, ack))
    out = failure(trail.verify())
    assert f"timeline row {ack.id}, case c0, audit seq 11: holds step 4 of the case where step 3 belongs " \
           "(reordered)" in out


def test_a_timeline_row_moved_to_another_case_is_named(trail):
    failed = next(r for r in trail.rows(timeline) if r.type == "verified")
    trail.execute(timeline.update().where(timeline.c.id == failed.id).values(case_id="c1"))
    out = failure(trail.verify())
    assert "case c0, audit seq 13: step 5 of the case is missing" in out and "2 case(s) differ" in out


def test_a_timeline_row_inserted_outside_the_trail_is_named(trail):
    last = trail.rows(timeline)[-1]
    trail.execute(timeline.insert().values(case_id="c3", at=last.at, type="closed", level=2, actor="mallory",
                                           note="closed", scheduled_at=None))
    new = trail.rows(timeline)[-1]
    assert f"timeline row {new.id}, case c3: no audit row holds this step (inserted outside the trail)" in failure(
        trail.verify())


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_any_timeline_row_edited_or_deleted_is_named(trail, change):
    rows = trail.rows(timeline)
    seqs = {r.case_id: [a.seq for a in trail.rows(audit_log) if a.case_id == r.case_id] for r in rows}
    for row in rows:
        position = [r.id for r in rows if r.case_id == row.case_id].index(row.id)
        seq = seqs[row.case_id][position]
        if change == "edit":
            trail.execute(timeline.update().where(timeline.c.id == row.id).values(actor="mallory"))
            expected = f"timeline row {row.id}, case {row.case_id}, audit seq {seq}: actor differs"
        else:
            trail.execute(timeline.delete().where(timeline.c.id == row.id))
            expected = f"case {row.case_id}, audit seq {seq}: step {position + 1} of the case is missing"
        assert expected in failure(trail.verify())
        if change == "edit":
            trail.execute(timeline.update().where(timeline.c.id == row.id).values(actor=row.actor))
        else:
            trail.execute(timeline.insert().values(**row._asdict()))
    assert trail.verify().exit_code == 0


# -- the key and the signed checkpoints -------------------------------------------------------------------

def forge(trail, key: bytes | None, *, action="closed", note="closed by nobody"):
    """Append one step to case c1's timeline and audit trail, as someone who can write the database."""
    last = trail.rows(audit_log)[-1]
    previous = audit.Entry(last.seq, last.at, last.actor, last.action, last.case_id, last.detail,
                           last.previous_hash, last.hash, last.mac)
    entry = audit.append(previous, at=last.at, actor="mallory", action=action, case_id="c1",
                         detail=audit.step_detail(2, note, None), key=key)
    trail.execute(audit_log.insert().values(**vars(entry)),
                  timeline.insert().values(case_id="c1", at=last.at, type=action, level=2, actor="mallory",
                                           note=note, scheduled_at=None))
    return entry


def test_rows_appended_after_a_checkpoint_without_the_key_are_named(trail):
    mark = trail.write_checkpoint()
    assert mark.seq == 14 and audit.signed_by(KEY.encode(), mark)
    entry = forge(trail, None)
    out = failure(trail.verify())
    assert f"audit chain broken at seq {entry.seq}: not signed with the audit key" in out


def test_rows_appended_with_another_key_are_named(trail):
    trail.write_checkpoint()
    entry = forge(trail, b"a-key-the-forger-made-up-himself!")
    assert f"audit chain broken at seq {entry.seq}: its MAC does not verify" in failure(trail.verify())


def test_rows_appended_by_the_service_after_a_checkpoint_verify(trail):
    trail.write_checkpoint()
    trail.clock.advance(timedelta(minutes=5))
    trail.service.run(handlers.take_action, handlers.TakeAction(
        "c1", "acknowledge", {"note": "seen"}, Identity("station", "zhang", "S1"), "*"))
    result = trail.verify()
    assert result.exit_code == 0, result.output
    assert "holds 1 signed checkpoint(s), the last at seq 14" in result.output and "1 row(s) after it" in result.output


def test_a_checkpoint_whose_signature_does_not_verify_is_named(trail):
    trail.write_checkpoint()
    line = json.loads(trail.checkpoints.read_text())
    forged = {**line, "seq": 15}
    trail.checkpoints.write_text(json.dumps(line) + "\n" + json.dumps(forged) + "\n")
    out = failure(trail.verify())
    assert f"checkpoint {trail.checkpoints}:2 (seq 15): its signature does not verify" in out


def test_a_chain_cut_short_after_a_checkpoint_is_named(trail):
    trail.write_checkpoint()
    trail.execute(audit_log.delete().where(audit_log.c.seq >= 13),
                  timeline.delete().where(timeline.c.type.in_(["verified", "reworked"])))
    assert "audit chain broken at seq 13: missing (the chain ends before the checkpoint)" in failure(trail.verify())


def test_a_chain_rewritten_from_the_start_without_the_key_is_named_at_its_first_row(trail):
    rows = trail.rows(audit_log)
    previous, forged = None, []
    for row in rows:
        previous = audit.append(previous, at=row.at, actor="forger", action=row.action, case_id=row.case_id,
                                detail=row.detail)
        forged.append(previous)
    trail.execute(audit_log.delete(), *(audit_log.insert().values(**vars(e)) for e in forged))
    assert "audit chain broken at seq 1: not signed with the audit key" in failure(trail.verify())


def test_a_chain_rewritten_with_the_key_is_caught_by_an_earlier_checkpoint(trail, tmp_path):
    """An insider who has the key can rewrite the chain consistently; the checkpoint kept outside the
    database (here: printed by ``gridcase audit checkpoint``) still names it."""
    printed = CliRunner().invoke(main, ["audit", "checkpoint"], env=trail.env)
    assert printed.exit_code == 0 and json.loads(printed.output)["seq"] == 14
    (tmp_path / "printed.json").write_text(printed.output)
    rows = trail.rows(audit_log)
    previous, forged = None, []
    for row in rows:
        previous = audit.append(previous, at=row.at, actor="forger" if row.seq == 3 else row.actor,
                                action=row.action, case_id=row.case_id, detail=row.detail, key=KEY.encode())
        forged.append(previous)
    trail.execute(audit_log.delete(), *(audit_log.insert().values(**vars(e)) for e in forged),
                  timeline.update().where(timeline.c.id == 3).values(actor="forger"))
    result = trail.verify("--checkpoint", str(tmp_path / "printed.json"))
    assert "audit chain broken at seq 14: differs from the checkpoint" in failure(result)


def test_rows_written_before_the_trail_had_a_key_are_signed_by_the_first_keyed_write(tmp_path):
    url = f"sqlite:///{tmp_path}/escalation.db"
    unkeyed = Trail(url, tmp_path)
    unkeyed.execute(audit_log.update().values(mac=None))
    assert "seq 1: not signed" in failure(unkeyed.verify())
    unkeyed.clock.advance(timedelta(minutes=5))
    unkeyed.service.run(handlers.take_action, handlers.TakeAction(
        "c1", "acknowledge", {"note": "seen"}, Identity("station", "zhang", "S1"), "*"))
    result = unkeyed.verify()
    assert result.exit_code == 0 and "intact: 15 row(s)" in result.output, result.output
    unkeyed.service.engine.dispose()


# -- checkpoints on a schedule ----------------------------------------------------------------------------

def wait_for(condition, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_scheduler_writes_signed_checkpoints_on_its_interval(trail):
    settings = trail.settings.replace(audit_checkpoint_seconds=0.2)
    service = bootstrap.build(settings, trail.clock, web=False, migrate=False)
    scheduler = Scheduler(service, idle_interval=0.1)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: trail.checkpoints.exists() and trail.checkpoints.read_text().count("\n") >= 1)
        trail.clock.advance(timedelta(minutes=5))
        service.run(handlers.take_action, handlers.TakeAction(
            "c1", "acknowledge", {"note": "seen"}, Identity("station", "zhang", "S1"), "*"))
        wait_for(lambda: trail.checkpoints.read_text().count("\n") >= 2)
    finally:
        scheduler.stop()
        thread.join(10)
        service.engine.dispose()
    marks = [json.loads(line) for line in trail.checkpoints.read_text().splitlines()]
    assert [m["seq"] for m in marks] == [14, 15], "one per interval, and only when the chain has grown"
    assert len(marks) == 2, "nor on stopping, since nothing was added after the last one"
    assert all(audit.signed_by(KEY.encode(), audit.Checkpoint.from_dict(m)) for m in marks)
    result = trail.verify()  # reads GRIDCASE_AUDIT_CHECKPOINTS by default
    assert result.exit_code == 0 and "holds 2 signed checkpoint(s), the last at seq 15" in result.output


def test_the_scheduler_writes_one_more_checkpoint_when_it_stops(trail):
    settings = trail.settings.replace(audit_checkpoint_seconds=3600)
    service = bootstrap.build(settings, trail.clock, web=False, migrate=False)
    scheduler = Scheduler(service, idle_interval=0.1)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: trail.checkpoints.exists())  # the first, on starting
        trail.clock.advance(timedelta(minutes=5))
        service.run(handlers.take_action, handlers.TakeAction(
            "c1", "acknowledge", {"note": "seen"}, Identity("station", "zhang", "S1"), "*"))
    finally:
        scheduler.stop()
        thread.join(10)
        service.engine.dispose()
    assert [json.loads(line)["seq"] for line in trail.checkpoints.read_text().splitlines()] == [14, 15]


def test_checkpoints_can_go_to_a_webhook(trail):
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append((self.headers["Content-Type"],
                             json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = trail.settings.replace(audit_checkpoints=f"http://127.0.0.1:{server.server_port}/checkpoints")
        service = bootstrap.build(settings, trail.clock, web=False, migrate=False)
        mark = Checkpoints(service).write()
        service.engine.dispose()
    finally:
        server.shutdown()
        server.server_close()
    assert received == [("application/json", mark.to_dict())]
    assert audit.signed_by(KEY.encode(), audit.Checkpoint.from_dict(received[0][1]))


def test_a_failed_delivery_does_not_stop_the_scheduler_and_is_tried_again(trail, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings = trail.settings.replace(audit_checkpoints=str(blocked / "checkpoints.jsonl"),
                                      audit_checkpoint_seconds=3600)
    service = bootstrap.build(settings, trail.clock, web=False, migrate=False)
    now = [0.0]
    writer = Checkpoints(service, monotonic=lambda: now[0])
    assert writer.maybe_write() is None  # logged, not raised
    assert writer.maybe_write() is None  # not before the interval
    blocked.unlink()
    now[0] += 3600
    assert writer.maybe_write().seq == 14
    service.engine.dispose()
