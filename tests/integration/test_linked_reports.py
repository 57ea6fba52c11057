"""Intake's side of acceptance (立案), on SQLite and PostgreSQL alike: a report merged into a case, and one
linked to it as a nearby duplicate, follow that case's status to closure; a refusal keeps its reason; a
proposed severity and the report's channel are stored; the on-site check is the verifier escalation names
(the station for a grid worker's own fix), never the one who made the fix; photos carry their kind."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake import handlers
from services.intake.domain.reports import NewReport, NotItsGridWorker, UnknownSeverity
from shared.auth import Identity
from shared.clock import FakeClock
from shared.messages import events
from shared.owners import AreaRef, OwnerRef, Owners
from shared.vocabulary import Level
from shared.words import Message, note_text
from tests.support.intake import intake_service

OWNERS = Owners(grid=AreaRef("G1", "网格 1"), station=AreaRef("S1", "工作站 1"), subcenter=AreaRef("C1", "分中心 1"),
                hq=AreaRef("HQ", "指挥部"))
WANG = Identity("grid_worker", "wang", "G1")
LI = Identity("station", "li", "S1")
HERE = (102.2, 27.9)


@pytest.fixture(params=["sqlite", "postgres"])
def intake(request, tmp_path):
    clock = FakeClock(datetime(2026, 1, 5, 1, 0, tzinfo=UTC))
    with intake_service(request.param, tmp_path, clock, "linked") as service:
        yield service


def report(service, key: str, description: str = "lamp out", at=HERE, **fields):
    return service.run(handlers.submit_report, NewReport("street_light", description, *at, **fields), WANG,
                       key).report


def changed(event: str, case_id: str, status: str, level: Level = Level.GRID, **fields) -> events.CaseChanged:
    owner = OWNERS.owner(level)
    return events.CaseChanged(event=event, case_id=case_id, status=status, level=level, owner=owner,
                              at=datetime(2026, 1, 5, 2, 0, tzinfo=UTC), **fields)


def seen(service, report_id: str, who: Identity = LI):
    with service.uow() as uow:
        return uow.store.get(report_id, who)


def test_a_merged_report_and_a_nearby_duplicate_follow_their_case_to_closure(intake):
    first = report(intake, "k1")
    merged = report(intake, "k2", "the same lamp, reported from the bridge", at=(102.21, 27.9))
    intake.run(handlers.follow_cases, [changed("case.opened", first.id, "open", scope=OWNERS),
                                       changed("case.opened", merged.id, "pending_acceptance", scope=OWNERS)])
    assert seen(intake, merged.id).duplicate_of is None, "a street away: not a nearby duplicate"
    nearby = report(intake, "k3", "lamp out again")  # within 50 m of the open case: linked, no case of its own
    assert nearby.duplicate_of == first.id and note_text(nearby.status_note).startswith("duplicate of case ")
    assert note_text(nearby.status_note, "zh").startswith("与案卷 ")
    intake.run(handlers.follow_cases, [
        changed("case.acknowledged", first.id, "acknowledged"),
        changed("case.merged", merged.id, "merged", reason=f"merged into {first.number_in('UTC')}",
                detail={"into": first.id, "number": first.number_in("UTC")})])
    linked = seen(intake, merged.id)
    assert (linked.duplicate_of, linked.status, linked.level) == (first.id, "acknowledged", Level.GRID)
    assert linked.status_note.startswith("merged into ")
    intake.run(handlers.follow_cases, [changed("case.resolved", first.id, "verifying",
                                               detail={"verifier_level": 2, "resolved_by": "wang"}),
                                       changed("case.closed", first.id, "closed")])
    assert [seen(intake, r.id).status for r in (first, merged, nearby)] == ["closed", "closed", "closed"]


def test_a_merge_and_a_change_of_its_target_in_one_batch_end_in_the_targets_state(intake):
    first, merged = report(intake, "k1"), report(intake, "k2", "a street away", at=(102.21, 27.9))
    intake.run(handlers.follow_cases, [
        changed("case.merged", merged.id, "merged", reason="merged into x", detail={"into": first.id}),
        changed("case.escalated", first.id, "open", Level.STATION)])
    assert (seen(intake, merged.id, WANG).status, seen(intake, merged.id, WANG).level) == ("open", Level.STATION)


def test_a_refusal_keeps_its_reason_for_the_reporter(intake):
    refused = report(intake, "k1")
    intake.run(handlers.follow_cases, [changed("case.refused", refused.id, "refused",
                                               reason="not_city_matter: a private yard")])
    assert (seen(intake, refused.id, WANG).status, seen(intake, refused.id, WANG).status_note) == (
        "refused", "not_city_matter: a private yard")  # a message from before reason_message: as written


def test_a_refusal_sent_as_a_message_is_kept_as_one_and_read_in_either_language(intake):
    refused = report(intake, "k1")
    why = Message("note.refused_with_note", {"reason": Message("refusal.not_city_matter"), "note": "a private yard"})
    intake.run(handlers.follow_cases, [changed("case.refused", refused.id, "refused",
                                               reason="not_city_matter: a private yard",
                                               reason_message=why.to_json())])
    stored = seen(intake, refused.id, WANG).status_note
    assert note_text(stored) == "not a city matter: a private yard"
    assert note_text(stored, "zh") == "不属于城市管理事项：a private yard"


def test_a_proposed_severity_and_the_channel_are_kept_and_an_unknown_severity_is_refused(intake):
    urgent = report(intake, "k1", severity="urgent")
    assert (urgent.severity, urgent.channel) == ("urgent", "grid_worker")
    assert report(intake, "k2", "b", at=(102.25, 27.9)).severity == "normal", "the category's default"
    staff = intake.run(handlers.submit_report, NewReport("street_light", "seen at the desk", 102.3, 27.95), LI,
                       "k3").report
    assert staff.channel == "staff"
    with pytest.raises(UnknownSeverity):
        report(intake, "k4", at=(102.26, 27.9), severity="apocalyptic")


def test_the_fix_is_checked_by_the_verifier_escalation_named_never_by_who_made_it(intake):
    case = report(intake, "k1")
    intake.run(handlers.follow_cases, [changed("case.opened", case.id, "open", scope=OWNERS),
                                       changed("case.resolved", case.id, "verifying",
                                               detail={"verifier_level": 2, "resolved_by": "wang"})])
    with pytest.raises(NotItsGridWorker):
        intake.run(handlers.verify_case, handlers.Verify(case.id, True, "", WANG))
    with pytest.raises(NotItsGridWorker):
        intake.run(handlers.verify_case, handlers.Verify(case.id, True, "", Identity("station", "wang", "S1")))
    verified = intake.run(handlers.verify_case, handlers.Verify(case.id, True, "", LI))
    assert verified.verifier == "li"


def test_photos_carry_their_kind(intake):
    import io

    from PIL import Image

    case = report(intake, "k1")
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "JPEG")
    for kind in ("before", "after"):
        intake.run(handlers.add_photo, handlers.AddPhoto(case.id, out.getvalue(), WANG, None, kind))
    assert sorted(p["kind"] for p in intake.run(handlers.report_photos, case.id, WANG)) == ["after", "before"]


def test_an_owner_ref_is_what_the_events_carry():  # the factories above build the messages escalation sends
    assert OWNERS.owner(Level.GRID) == OwnerRef(Level.GRID, "G1", "网格 1")


def test_a_case_outside_every_sub_center_is_checked_by_headquarters(intake):
    case = report(intake, "k1", at=(10.0, 10.0))
    intake.run(handlers.follow_cases, [changed("case.resolved", case.id, "verifying", Level.HQ,
                                               detail={"verifier_level": 4, "resolved_by": "chen"})])
    with pytest.raises(NotItsGridWorker):
        intake.run(handlers.verify_case, handlers.Verify(case.id, True, "", Identity("command", "chen")))
    assert intake.run(handlers.verify_case, handlers.Verify(case.id, True, "", Identity("command", "zhang"))).passed
