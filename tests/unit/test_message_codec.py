"""The compiled message codec answers exactly as the marshmallow schemas do: the same dump, the same
loaded message, and, where the compiled path cannot decide, the schema's own answer or refusal."""
import json
import math

import pytest

from shared.departments import Department
from shared.messages import Envelope, MessageError, make_message, read_message, schemas
from shared.messages import envelope as envelope_module
from shared.messages import events as e
from shared.messages.codec import compile_schema
from shared.owners import Owners
from shared.vocabulary import Level
from tests.unit.test_messages import HQ, NOW, ST, dispatched, reported

SAMPLES = [
    reported(), reported(location=None, accuracy_m=12.5, client_time=NOW, location_unverified=True,
                         reporter_grid="G1", channel="grid_worker"),
    dispatched(),
    e.CaseDispatched(case_id="c2", number="n", category="other", severity="urgent", reported_at=NOW,
                     areas_version=1, start_level=Level.GRID,
                     owners=Owners(grid=e.AreaRef("G1", "Grid"), station=ST, subcenter=e.AreaRef("SC", "Sub"), hq=HQ),
                     description="d", location=e.Location(1.5, -2), reporter="w", channel="staff"),
    e.CaseTransferred(case_id="c1", owners=e.Owners(hq=HQ), level=Level.STATION, reason="moved", actor="a",
                      revision=3, revision_step=1, basis=2),
    e.CaseChanged(event="case.escalated", case_id="c1", status="open", level=Level.HQ,
                  owner=e.OwnerRef(Level.HQ, "HQ", "City"), at=NOW, scheduled_at=NOW, deadline=NOW,
                  detail={"passed": True, "amount": [1, 2]}, revision=7, revision_step=2, actor="x", reason="r"),
    e.CaseChanged(event="case.opened", case_id="c1", status="open", level=Level.GRID,
                  owner=e.OwnerRef(Level.GRID, "G1", "Grid"), at=NOW,
                  scope=Owners.from_ids({"grid": "G1", "station": "S1"}), revision=1),
    e.CaseVerified(case_id="c1", passed=False, verifier="w1", at=NOW, note="still dark"),
    e.AreasPublished(version=2, areas=(e.PublishedArea("HQ", "City", "hq"),
                                       e.PublishedArea("S1", "Station 1", "station", "HQ"))),
    e.DepartmentsPublished(version=1, departments=(Department("d1", "路灯", "Lights", "street_light",
                                                              ("a",), ("b", "c")),)),
]


def test_every_registered_schema_is_compiled():
    not_compiled = [t for t, schema in schemas._PRODUCING.items() if compile_schema(schema) is None]
    assert not_compiled == []


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TYPE)
def test_the_compiled_dump_and_load_answer_as_the_schema(message):
    schema = schemas._PRODUCING[message.TYPE]
    load, dump = compile_schema(schema)
    assert dump(message) == schema.dump(message)
    wire = json.loads(json.dumps(schema.dump(message)))
    assert load(wire) == schema.load(wire)


def _reference(envelope: Envelope):
    """What marshmallow alone makes of the payload: the message, or the refusal."""
    schema = schemas._CONSUMING.get((envelope.type, envelope.version))
    try:
        return "ok", schema.load(envelope.payload)
    except Exception as exc:  # noqa: BLE001 (any refusal: the compiled door must refuse too)
        return "refused", type(exc).__name__


def _ours(envelope: Envelope):
    try:
        message = read_message(envelope)
    except MessageError:
        return "refused", None
    object.__setattr__(message, "envelope", None)
    return "ok", message


#: what a field may be changed to: every JSON type, and text a lenient field might read
ODD_VALUES = [None, True, False, 0, 1, -3, 4, 2.5, float("nan"), float("inf"), -1e300, "", "1", "2.5", "nan",
              "hq", "station", "2026-03-01T08:30:00Z", "2026-03-01T08:30:00", "not a time", "true", [], [1, 2],
              {}, {"id": "x", "name": "y"}, {"id": 1}, {"grid": "G1"}, {"lon": 1, "lat": 2}]
DROPPED = object()


def test_a_payload_with_any_field_changed_or_dropped_is_read_or_refused_as_the_schema_does():
    checked = 0
    for message in SAMPLES:
        envelope = Envelope.from_json(make_message(message, occurred_at=NOW, producer="test").to_json())
        for key in [*sorted(envelope.payload), "unknown"]:
            for value in [DROPPED, *ODD_VALUES]:
                payload = dict(envelope.payload)
                if value is DROPPED:
                    payload.pop(key, None)
                else:
                    payload[key] = value
                changed = Envelope(type=envelope.type, payload=payload, occurred_at=NOW, producer="t",
                                   version=envelope.version)
                status, expected = _reference(changed)
                got_status, got = _ours(changed)
                assert got_status == status, (message.TYPE, key, value)
                if status == "ok":
                    if isinstance(expected, e.CaseChanged):
                        object.__setattr__(expected, "event", changed.type)
                    assert got == expected or (_has_nan(got) and _has_nan(expected)), (message.TYPE, key, value)
                checked += 1
    assert checked > 2000


def _has_nan(message) -> bool:
    return any(isinstance(v, float) and math.isnan(v) for v in vars(message).values())


def _schema_only(body: bytes):
    raw = json.loads(body)
    data = envelope_module._ENVELOPE.load(raw)
    return Envelope(type=data["type"], payload=data["payload"], occurred_at=envelope_module.utc(data["occurred_at"]),
                    producer=data["producer"], version=data["version"], id=str(data["id"]),
                    correlation_id=data["correlation_id"], traceparent=data["traceparent"])


ENVELOPE_VALUES = [None, True, 0, 1, 3, 2.5, "", "x", "2026-03-01T08:30:00.000Z", "2026-03-01T08:30:00",
                   "2026-03-01T08:30:00+02:00", "2026-03-01T08:30:00.123456-05:30", "2026-03-01 08:30:00Z",
                   "3b241101-e2bb-4255-8caf-4136c566a962", "3B241101E2BB42558CAF4136C566A962", "00-abc-def-01",
                   {}, {"a": 1}, [1]]


@pytest.mark.parametrize("key", ["id", "type", "version", "occurred_at", "correlation_id", "producer", "payload",
                                 "traceparent"])
def test_an_envelope_with_any_field_changed_or_dropped_is_read_or_refused_as_the_schema_does(key):
    for value in [DROPPED, *ENVELOPE_VALUES]:
        raw = json.loads(make_message(reported(), occurred_at=NOW, producer="test", traceparent="00-a-b-01").to_json())
        if value is DROPPED:
            raw.pop(key)
        else:
            raw[key] = value
        body = json.dumps(raw).encode()
        try:
            expected = _schema_only(body)
        except Exception:  # noqa: BLE001 (any refusal: the fast door must refuse too)
            with pytest.raises(MessageError):
                Envelope.from_json(body)
            continue
        assert Envelope.from_json(body) == expected, value
