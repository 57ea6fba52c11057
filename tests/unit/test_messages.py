from datetime import UTC, datetime

import pytest

from shared.messages import Envelope, MessageError, make_message, read_payload

NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def reported(**overrides):
    payload = {"case_id": "c1", "number": "20260301-000001", "category": "street_light", "severity": "normal",
               "description": "lamp out", "location": {"lon": 102.2, "lat": 27.9}, "reporter": "w1",
               "reported_at": "2026-03-01T08:30:00.000Z"}
    return {**payload, **overrides}


def test_an_envelope_survives_a_round_trip_through_json():
    message = make_message("case.reported", reported(), occurred_at=NOW, producer="intake", correlation_id="c1")
    again = Envelope.from_json(message.to_json())
    assert again == message
    assert again.occurred_at == NOW


def test_a_producer_cannot_emit_a_payload_its_schema_rejects():
    with pytest.raises(MessageError, match="location"):
        make_message("case.reported", reported(location={"lon": 500, "lat": 0}), occurred_at=NOW, producer="x")


def test_a_producer_cannot_add_fields_the_schema_does_not_declare():
    with pytest.raises(MessageError, match="surprise"):
        make_message("case.reported", reported(surprise=1), occurred_at=NOW, producer="x")


def test_a_consumer_ignores_fields_it_does_not_know():
    message = Envelope(type="case.reported", payload=reported(added_later="x"), occurred_at=NOW, producer="intake")
    assert "added_later" not in read_payload(message)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"id": "nope"}', b"[1, 2]"])
def test_garbage_is_a_message_error(body):
    with pytest.raises(MessageError):
        Envelope.from_json(body)


def test_an_unknown_type_is_a_message_error():
    with pytest.raises(MessageError, match="unknown message type"):
        make_message("case.exploded", {}, occurred_at=NOW, producer="x")


def test_the_correlation_id_defaults_to_the_message_id():
    message = make_message("case.reported", reported(), occurred_at=NOW, producer="intake")
    assert Envelope.from_json(message.to_json()).correlation_id == message.id
