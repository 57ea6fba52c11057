"""Notifications on RabbitMQ + PostgreSQL, the notifier a process of its own (``gridcase worker notify``):
SIGKILLed while a receiver holds a delivery open, then started again, it delivers everything, and the
receiver — deduplicating by ``Gridcase-Event-Id`` — records each event once and misses none."""
from __future__ import annotations

import time

import requests

from tests.support.receivers import receiver
from tests.support.system import Production, a_point_in_grid, auth, wait_for_case

CASES = 3
#: per case: opened (assigned to its grid, heard by the station's unit subscription), then escalated:
#: ``escalated`` and ``assigned`` to the station
EVENTS_PER_CASE = 3


def test_a_notifier_killed_mid_delivery_delivers_after_restart_and_the_receiver_records_each_event_once(
        tmp_path, broker_url, postgres_urls):
    with receiver() as http:
        env = {"GRIDCASE_NOTIFY_ALLOW_PRIVATE": "1", "GRIDCASE_NOTIFY_TIMEOUT": "1",
               "GRIDCASE_NOTIFY_RETRY_INITIAL": "0.2"}
        system = Production(tmp_path, broker_url, postgres_urls, env=env)
        try:
            system.start()
            urls = system.urls
            admin = system.token("admin")
            grid, lon, lat = a_point_in_grid(urls["dispatch"], admin)
            station = requests.get(f"{urls['dispatch']}/dispatch/v1/locate", params={"lon": lon, "lat": lat},
                                   headers=auth(admin), timeout=10).json()["station"]["id"]
            worker = system.token("grid_worker", area=grid, user="wang")
            http.answers["/dedupe"] = ["hang", 200]
            http.hang_seconds = 60.0
            made = requests.post(f"{urls['escalation']}/escalation/v1/subscriptions", headers=auth(admin), timeout=10,
                                 json={"unit": station, "events": ["assigned", "escalated"], "channel": "webhook",
                                       "target": http.url("/dedupe")})
            assert made.status_code == 201, made.text
            for n in range(CASES):
                filed = requests.post(f"{urls['intake']}/intake/v1/reports", timeout=10, json={
                    "category": "neighbour_dispute", "description": f"quarrel {n}",
                    "location": {"lon": lon, "lat": lat}}, headers=auth(worker, **{"Idempotency-Key": f"kill-{n}"}))
                assert filed.status_code == 201, filed.text
                case_id = filed.json()["id"]
                case, _ = wait_for_case(urls["escalation"], case_id, worker, timeout=20)
                read = requests.get(f"{urls['escalation']}/escalation/v1/cases/{case_id}", headers=auth(worker),
                                    timeout=10)
                acted = requests.post(f"{urls['escalation']}/escalation/v1/cases/{case_id}/actions", timeout=10,
                                      headers=auth(worker, **{"If-Match": read.headers["ETag"]}),
                                      json={"action": "escalate", "reason": "beyond the grid"})
                assert acted.status_code == 200, acted.text
            [held] = http.wait("/dedupe", 1, timeout=30)
            system.processes.kill("worker-notify")  # SIGKILL, the delivery still open at the receiver
            http.release.set()
            system.start_worker("notify")
            expected = CASES * EVENTS_PER_CASE
            deadline = time.monotonic() + 90  # the cut delivery waits out its lease before it is sent again

            def resent() -> bool:
                return held.event_id in {r.event_id for r in http.at("/dedupe") if r is not held}

            while time.monotonic() < deadline:
                if len({r.event_id for r in http.at("/dedupe")}) >= expected and resent():
                    break
                time.sleep(0.1)
            time.sleep(1.0)  # anything still to come would come now
            deliveries = http.at("/dedupe")
            unique = {r.event_id for r in deliveries}
            assert len(unique) == expected, f"{len(unique)} events of {expected} reached the receiver"
            assert held.event_id in {r.event_id for r in deliveries if r is not held}, \
                "the delivery cut by the kill was sent again, under the same event id"
            kinds = sorted((r.json["case"]["id"], r.json["event"], r.json["to"][0]["role"])
                           for r in {r.event_id: r for r in deliveries}.values())
            assert len(kinds) == len(set(kinds)) == expected
        finally:
            system.processes.stop_all()
