import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.messages import Envelope, MessageError, make_message, read_message
from shared.messages import events as e
from shared.owners import Owners
from shared.vocabulary import Level

NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
HQ, ST = e.AreaRef("HQ", "City"), e.AreaRef("ST1", "Station 1")


def reported(**overrides) -> e.CaseReported:
    return replace(e.CaseReported(case_id="c1", number="20260301-000001", category="street_light",
                                  severity="normal", description="lamp out", location=e.Location(102.2, 27.9),
                                  reporter="w1", reported_at=NOW), **overrides)


def dispatched() -> e.CaseDispatched:
    return e.CaseDispatched(case_id="c1", number="n", category="other", severity="normal", reported_at=NOW,
                            areas_version=3, start_level=Level.STATION, owners=e.Owners(hq=HQ, station=ST),
                            candidates=(e.Candidate("G1", 12.5),))


def round_trip(message: e.Message) -> e.Message:
    return read_message(Envelope.from_json(make_message(message, occurred_at=NOW, producer="test").to_json()))


@pytest.mark.parametrize("message", [
    reported(), dispatched(),
    e.CaseTransferred(case_id="c1", owners=e.Owners(hq=HQ), level=None, reason="moved", actor="a"),
    e.CaseChanged(event="case.escalated", case_id="c1", status="open", level=Level.HQ,
                  owner=e.OwnerRef(Level.HQ, "HQ", "City"), at=NOW, scheduled_at=NOW, detail={"passed": True}),
    e.CaseVerified(case_id="c1", passed=False, verifier="w1", at=NOW, note="still dark"),
    e.AreasPublished(version=2, areas=(e.PublishedArea("HQ", "City", "hq"),
                                       e.PublishedArea("S1", "Station 1", "station", "HQ"))),
    e.CaseChanged(event="case.opened", case_id="c1", status="open", level=Level.GRID,
                  owner=e.OwnerRef(Level.GRID, "G1", "Grid"), at=NOW,
                  scope=Owners.from_ids({"grid": "G1", "station": "S1"})),
], ids=lambda m: m.TYPE)
def test_every_message_type_survives_a_round_trip_through_its_wire_form(message):
    assert round_trip(message) == message


def test_a_received_message_knows_its_envelope_and_the_case_is_the_correlation():
    message = round_trip(reported())
    assert message.envelope.type == "case.reported" and message.envelope.correlation_id == "c1"


def test_a_level_travels_as_its_number():
    envelope = make_message(dispatched(), occurred_at=NOW, producer="dispatch")
    assert envelope.payload["start_level"] == 2 and envelope.version == 2


def test_version_1_of_case_dispatched_with_a_level_name_is_still_read():
    envelope = make_message(dispatched(), occurred_at=NOW, producer="dispatch")
    old = Envelope(type="case.dispatched", version=1, payload={**envelope.payload, "start_level": "station"},
                   occurred_at=NOW, producer="dispatch")
    assert read_message(old).start_level is Level.STATION


def test_a_message_its_schema_rejects_is_refused_by_the_consumer_naming_the_field():
    envelope = make_message(reported(location=e.Location(500, 0)), occurred_at=NOW, producer="x")
    with pytest.raises(MessageError, match="location"):
        read_message(Envelope.from_json(envelope.to_json()))


def test_a_consumer_ignores_fields_it_does_not_know():
    payload = make_message(reported(), occurred_at=NOW, producer="intake").payload
    envelope = Envelope(type="case.reported", payload={**payload, "added_later": "x"}, occurred_at=NOW,
                        producer="intake")
    assert read_message(envelope) == reported()


def test_a_payload_missing_a_required_field_is_a_message_error():
    envelope = Envelope(type="case.reported", payload={"case_id": "c1"}, occurred_at=NOW, producer="intake")
    with pytest.raises(MessageError, match="number"):
        read_message(envelope)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"id": "nope"}', b"[1, 2]"])
def test_garbage_is_a_message_error(body):
    with pytest.raises(MessageError):
        Envelope.from_json(body)


def test_an_unknown_type_is_a_message_error():
    envelope = Envelope(type="case.exploded", payload={}, occurred_at=NOW, producer="x")
    with pytest.raises(MessageError, match="unknown message type"):
        read_message(envelope)


def test_the_trace_context_travels_in_the_envelope():
    trace = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    envelope = make_message(reported(), occurred_at=NOW, producer="intake", traceparent=trace)
    assert Envelope.from_json(envelope.to_json()).traceparent == trace


def test_a_lifecycle_event_is_routed_by_its_name_and_read_back_as_the_same_event():
    changed = e.CaseChanged(event="case.suspended", case_id="c1", status="suspended", level=Level.STATION,
                            owner=e.OwnerRef(Level.STATION, "S1", "Station"), at=NOW, reason="waiting for parts")
    envelope = make_message(changed, occurred_at=NOW, producer="escalation")
    assert envelope.type == "case.suspended" and "event" not in envelope.payload
    assert read_message(Envelope.from_json(envelope.to_json())) == changed


@pytest.mark.parametrize("hq, field", [
    ("HQ", "hq"), ({"id": "HQ"}, "name"), ({"id": 7, "name": "City"}, "id"), (None, "hq")],
    ids=["text", "no name", "number id", "null"])
def test_an_area_reference_that_is_not_id_and_name_text_is_refused_naming_it(hq, field):
    payload = make_message(dispatched(), occurred_at=NOW, producer="dispatch").payload
    envelope = Envelope(type="case.dispatched", version=2, payload={**payload, "hq": hq}, occurred_at=NOW,
                        producer="dispatch")
    with pytest.raises(MessageError, match=field):
        read_message(envelope)


@pytest.mark.parametrize("area, field", [
    ({"id": "X", "name": "X", "level": "district"}, "level"), ({"id": "X", "name": "X", "level": "hq", "parent": 3},
                                                                "parent")], ids=["unknown level", "number parent"])
def test_a_published_area_with_an_unknown_level_or_a_parent_that_is_not_text_is_refused(area, field):
    envelope = Envelope(type="areas.published", payload={"version": 2, "areas": [area]}, occurred_at=NOW,
                        producer="dispatch")
    with pytest.raises(MessageError, match=field):
        read_message(envelope)


def test_a_scope_names_only_the_levels_below_headquarters():
    changed = e.CaseChanged(event="case.opened", case_id="c1", status="open", level=Level.GRID,
                            owner=e.OwnerRef(Level.GRID, "G1", "Grid"), at=NOW,
                            scope=Owners.from_ids({"grid": "G1"}))
    wire = json.loads(make_message(changed, occurred_at=NOW, producer="escalation").to_json())
    assert wire["payload"]["scope"] == {"grid": "G1", "station": None, "subcenter": None}
    for bad in ({"hq": "HQ"}, {"grid": 7}, ["G1"]):
        wire["payload"]["scope"] = bad
        with pytest.raises(MessageError, match="scope"):
            read_message(Envelope.from_json(json.dumps(wire)))


def test_a_reports_channel_travels_to_escalation_and_a_message_from_before_channels_has_none():
    assert round_trip(reported(channel="open311")).channel == "open311"
    assert round_trip(replace(dispatched(), channel="grid_worker")).channel == "grid_worker"
    envelope = make_message(reported(channel="open311"), occurred_at=NOW, producer="intake")
    old = Envelope(type="case.reported", version=envelope.version,
                   payload={k: v for k, v in envelope.payload.items() if k != "channel"},
                   id=envelope.id, occurred_at=NOW, correlation_id="c1", producer="intake")
    assert read_message(old).channel is None, "a report from before channels opens at once (Policy.acceptance_needed)"


def test_a_level_too_large_for_a_number_is_a_message_error_not_a_crash():
    body = make_message(dispatched(), occurred_at=NOW, producer="test").to_json().replace(
        '"start_level":2', '"start_level":1e400')
    assert '1e400' in body
    with pytest.raises(MessageError, match="start_level"):
        read_message(Envelope.from_json(body))
