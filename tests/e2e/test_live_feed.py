"""The command center's live feed (GET /escalation/v1/cases/events) over real HTTP: it starts with
``hello``, replays what a client missed after its Last-Event-ID, keeps to the caller's area, and is only
served to a client that accepts an event stream."""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests.support.system import a_point_in_grid, auth, embedded_system, token, wait_for_case

FEED = "/escalation/v1/cases/events"


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data = tmp_path_factory.mktemp("live")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin)
        station = requests.get(f"{base}/dispatch/v1/locate", params={"lon": lon, "lat": lat}, headers=auth(admin),
                               timeout=10).json()["station"]["id"]
        people = {"worker": token(data, "grid_worker", area=grid, user="wang"),
                  "station": token(data, "station", area=station, user="zhao"),
                  "other_station": token(data, "station", area="SC06-ST01" if station != "SC06-ST01" else "SC01-ST01",
                                         user="qian")}
        yield base, people, (lon, lat)


def events(base: str, who: str, *, last_event_id: str | None = None, until=lambda seen: False,
           seconds: float = 3.0) -> list[dict]:
    """The events the feed sends within ``seconds`` (or until ``until(events)``): {id, event, data}."""
    headers = auth(who, Accept="text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {}))
    seen, current = [], {}
    started = time.monotonic()
    with requests.get(f"{base}{FEED}", headers=headers, stream=True, timeout=(5, seconds)) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        try:
            for line in response.iter_lines(chunk_size=None, decode_unicode=True):  # as it arrives
                if line == "" and current:
                    event, current = current, {}
                    if "event" not in event:  # the opening ``retry:``
                        continue
                    seen.append(event)
                    if until(seen) or time.monotonic() - started > seconds:
                        break
                elif line and not line.startswith(":"):
                    field, _, value = line.partition(": ")
                    current[field] = json.loads(value) if field == "data" else value
        except requests.exceptions.ConnectionError:  # read timeout: the feed was quiet
            pass
    return seen


def file_case(base, people, lon, lat, description) -> str:
    filed = requests.post(f"{base}/intake/v1/reports", headers=auth(people["worker"]), timeout=10, json={
        "category": "street_light", "description": description, "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    wait_for_case(base, filed.json()["id"], people["worker"])
    return filed.json()["id"]


def test_a_new_connection_starts_with_hello_naming_the_newest_event(system):
    base, people, _ = system
    first = events(base, people["station"], until=lambda seen: True)[0]
    assert first["event"] == "hello" and first["id"] == str(first["data"]["last_event_id"])


def test_a_client_that_reconnects_with_its_last_event_id_gets_what_it_missed_in_its_own_area_only(system):
    base, people, (lon, lat) = system
    hello = events(base, people["station"], until=lambda seen: True)[0]
    missed = file_case(base, people, lon, lat, "filed while the board was away")

    replayed = events(base, people["station"], last_event_id=hello["id"],
                      until=lambda seen: any(e["data"]["case"]["id"] == missed for e in seen if e["event"] == "case"))
    opened = [e for e in replayed if e["event"] == "case" and e["data"]["case"]["id"] == missed]
    assert opened and opened[0]["data"]["step"]["type"] == "opened"
    assert opened[0]["data"]["case"]["report"]["description"] == "filed while the board was away"
    assert int(opened[0]["id"]) > int(hello["id"])

    elsewhere = events(base, people["other_station"], last_event_id=hello["id"], seconds=1.5)
    assert not [e for e in elsewhere if e["event"] == "case"]


def test_the_feed_is_refused_to_a_client_that_does_not_accept_an_event_stream_or_has_no_token(system):
    base, people, _ = system
    plain = requests.get(f"{base}{FEED}", headers=auth(people["station"]), timeout=10)
    assert plain.status_code == 406 and plain.headers["Content-Type"] == "application/problem+json"
    anonymous = requests.get(f"{base}{FEED}", headers={"Accept": "text/event-stream"}, timeout=10)
    assert anonymous.status_code == 401
