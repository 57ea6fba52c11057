"""Notifications end to end on the embedded system, over real HTTP, to real receivers on loopback: a
webhook that fails three times and then takes one signed delivery (every try with the same event id),
the new owner told of an escalation within 2 s (webhook and bell), WeCom and DingTalk robots checked
against their documented formats, e-mail through an SMTP server that requires STARTTLS in each
subscriber's language, a receiver that hangs cut off without holding up another, a 4xx given up at once
and re-sent by hand, and subscriptions' bad input and access."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time

import pytest
import requests

from services.escalation.notify.channels import verify_signature
from tests.support.receivers import mail_server, receiver, self_signed
from tests.support.system import GRIDCASE, ROOT, a_point_in_grid, auth, embedded_system, token, wait_for_case

SUBSCRIPTIONS = "/escalation/v1/subscriptions"


class City:
    def __init__(self, base, data, env):
        self.base, self.data, self.env = base, data, env
        self.admin = token(data, "admin")
        self.grid, self.lon, self.lat = a_point_in_grid(base, self.admin)
        where = requests.get(f"{base}/dispatch/v1/locate", params={"lon": self.lon, "lat": self.lat},
                             headers=auth(self.admin), timeout=10).json()
        self.station_id, self.subcenter_id = where["station"]["id"], where["subcenter"]["id"]
        self.worker = token(data, "grid_worker", area=self.grid, user="wang")
        self.station = token(data, "station", area=self.station_id, user="zhao")
        self.reports = 0

    def subscribe(self, who=None, expect=201, **body) -> dict:
        answer = requests.post(f"{self.base}{SUBSCRIPTIONS}", headers=auth(who or self.admin), json=body, timeout=10)
        assert answer.status_code == expect, answer.text
        return answer.json()

    def report(self) -> str:
        self.reports += 1
        filed = requests.post(f"{self.base}/intake/v1/reports", headers=auth(self.worker, **{
            "Idempotency-Key": f"notify-{self.reports}-{time.monotonic_ns()}"}), timeout=10, json={
            "category": "neighbour_dispute", "description": "a quarrel over a wall",
            "location": {"lon": self.lon, "lat": self.lat}})
        assert filed.status_code == 201, filed.text
        case_id = filed.json()["id"]
        wait_for_case(self.base, case_id, self.worker, timeout=15)
        return case_id

    def escalate(self, case_id: str) -> dict:
        read = requests.get(f"{self.base}/escalation/v1/cases/{case_id}", headers=auth(self.worker), timeout=10)
        answer = requests.post(f"{self.base}/escalation/v1/cases/{case_id}/actions", timeout=10,
                               headers=auth(self.worker, **{"If-Match": read.headers["ETag"]}),
                               json={"action": "escalate", "reason": "needs a ladder"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def cli(self, *args) -> subprocess.CompletedProcess:
        import os

        return subprocess.run(GRIDCASE + ["notify", *args, "--data-dir", str(self.data)], cwd=ROOT, timeout=60,
                              env={**os.environ, **self.env}, capture_output=True, text=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("notify")
    certificate = self_signed(data)
    with receiver() as http, mail_server(certificate) as mail:
        env = {"GRIDCASE_NOTIFY_ALLOW_PRIVATE": "1", "GRIDCASE_NOTIFY_RETRY_INITIAL": "0.2",
               "GRIDCASE_NOTIFY_TIMEOUT": "1.5", "GRIDCASE_SMTP_URL": f"smtp://127.0.0.1:{mail.port}",
               "GRIDCASE_MAIL_FROM": "gridcase@city.example", "SSL_CERT_FILE": str(certificate[0]),
               "GRIDCASE_PUBLIC_URL": "https://gridcase.city.example"}
        with embedded_system(data, env=env) as base:
            yield City(base, data, env), http, mail


def test_a_receiver_failing_three_times_then_succeeding_gets_one_signed_delivery_under_one_event_id(world):
    city, http, _ = world
    http.answers["/flaky"] = [503, 500, 429, 200]
    made = city.subscribe(unit=city.station_id, events=["escalated"], channel="webhook", target=http.url("/flaky"))
    case_id = city.report()
    city.escalate(case_id)
    tries = http.wait("/flaky", 4)
    time.sleep(1.0)  # nothing more comes once it was taken (retries are 0.2 s apart here)
    tries = http.at("/flaky")
    assert [t.status for t in tries] == [503, 500, 429, 200]
    assert len({t.event_id for t in tries}) == 1, "every retry carries the same Gridcase-Event-Id"
    taken = tries[-1]
    assert verify_signature(taken.headers["gridcase-signature"], made["secret"], taken.body, time.time())
    body = taken.json
    assert body["id"] == taken.event_id and body["event"] == "escalated" and body["case"]["id"] == case_id
    assert body["case"]["level"] == 2 and body["case"]["owners"]["station"]["id"] == city.station_id
    assert body["case"]["url"] == f"https://gridcase.city.example/board/#case={case_id}"
    assert body["case"]["deadline"] and body["at"].endswith("Z")
    metrics = requests.get(f"{city.base}/metrics", timeout=10).text
    assert 'gridcase_notifications_sent_total{channel="webhook"}' in metrics
    assert 'gridcase_notifications_failed_total{channel="webhook",final="retry"} 3.0' in metrics
    assert "gridcase_notification_latency_seconds_bucket" in metrics


def test_an_escalation_tells_the_new_owner_within_two_seconds_by_webhook_and_on_the_bell(world):
    city, http, _ = world
    city.subscribe(city.station, unit=city.station_id, events=["assigned"], channel="webhook",
                   target=http.url("/station-desk"))
    case_id = city.report()
    bell = requests.get(f"{city.base}/escalation/v1/notifications?unread=1", headers=auth(city.station), timeout=10)
    before = bell.json()["unread"]
    city.escalate(case_id)
    acted = time.monotonic()
    told = http.wait("/station-desk", 1)
    deadline = time.monotonic() + 5
    while not (told := [r for r in http.at("/station-desk") if r.json["case"]["id"] == case_id
                        and r.json["to"] == [{"unit": city.station_id, "role": "station"}]]):
        assert time.monotonic() < deadline, "the station was not told"
        time.sleep(0.02)
    told = told[0]
    assert told.at - acted < 2.0, f"the new owner heard after {told.at - acted:.2f} s"
    bell = requests.get(f"{city.base}/escalation/v1/notifications?unread=1", headers=auth(city.station),
                        timeout=10).json()
    assert bell["unread"] == before + 1
    newest = bell["items"][0]
    assert newest["event"] == "assigned" and newest["case_id"] == case_id and newest["read"] is False
    read = requests.post(f"{city.base}/escalation/v1/notifications/read", headers=auth(city.station),
                         json={"all": True}, timeout=10)
    assert read.status_code == 200 and read.json()["unread"] == 0
    worker_bell = requests.get(f"{city.base}/escalation/v1/notifications", headers=auth(city.worker), timeout=10)
    assert all(item["payload"]["to"][0]["unit"] == city.grid for item in worker_bell.json()["items"]), \
        "a grid worker's bell holds its own grid's notifications only"


def test_a_grid_worker_is_not_told_of_a_case_they_filed_and_the_other_workers_of_the_grid_are(world):
    """The opening's ``assigned`` goes to the grid's inbox; whoever filed the report is not told of what
    they just did, another worker of the same grid is (the list and the unread count agree)."""
    city, _, _ = world
    colleague = token(city.data, "grid_worker", area=city.grid, user="li")

    def bell(who) -> dict:
        answer = requests.get(f"{city.base}/escalation/v1/notifications", headers=auth(who), timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    before = {"mine": bell(city.worker)["unread"], "theirs": bell(colleague)["unread"]}
    case_id = city.report()
    deadline = time.monotonic() + 10
    while not [i for i in bell(colleague)["items"] if i["case_id"] == case_id]:
        assert time.monotonic() < deadline, "the other worker of the grid was not told"
        time.sleep(0.05)
    theirs, mine = bell(colleague), bell(city.worker)
    assert [i["event"] for i in theirs["items"] if i["case_id"] == case_id] == ["assigned"]
    assert theirs["unread"] == before["theirs"] + 1
    assert not [i for i in mine["items"] if i["case_id"] == case_id], "the reporter was told of their own report"
    assert mine["unread"] == before["mine"]

def test_wecom_and_dingtalk_robots_get_their_documented_markdown_messages(world):
    city, http, _ = world
    city.subscribe(unit=city.station_id, events=["escalated"], channel="wecom", target=http.url("/wecom?key=K1"))
    city.subscribe(unit=city.station_id, events=["escalated"], channel="dingtalk", language="en",
                   target=http.url("/dingtalk?access_token=T1"), secret="SEC0123456789abcdef")
    case_id = city.report()
    number = city.escalate(case_id)["number"]
    [wecom] = [r for r in http.wait("/wecom", 1) if number in r.body.decode()]
    body = wecom.json
    assert wecom.query["key"] == ["K1"] and set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"content"} and len(body["markdown"]["content"].encode()) <= 4096
    assert "案卷已升级" in body["markdown"]["content"] and number in body["markdown"]["content"]
    [ding] = [r for r in http.wait("/dingtalk", 1) if number in r.body.decode()]
    body = ding.json
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert "Case escalated" in body["markdown"]["title"]
    timestamp, sign = ding.query["timestamp"][0], ding.query["sign"][0]
    assert abs(int(timestamp) / 1000 - time.time()) < 3600, "DingTalk refuses a timestamp an hour off"
    expected = hmac.new(b"SEC0123456789abcdef", f"{timestamp}\nSEC0123456789abcdef".encode(), hashlib.sha256)
    assert sign == base64.b64encode(expected.digest()).decode() and ding.query["access_token"] == ["T1"]


def test_e_mail_goes_through_starttls_in_each_subscribers_language(world):
    city, _, mail = world
    city.subscribe(unit=city.station_id, events=["escalated"], channel="email", target="duty@city.example")
    city.subscribe(unit=city.station_id, events=["escalated"], channel="email", target="ops@city.example",
                   language="en")
    case_id = city.report()
    number = city.escalate(case_id)["number"]
    from email import message_from_bytes, policy

    def mine():
        return [(message_from_bytes(e.content, policy=policy.default), tls) for e, tls in mail.messages
                if number.encode() in e.content]

    deadline = time.monotonic() + 20
    while len(mine()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    by_to = {m["To"]: (m, tls) for m, tls in mine()}
    assert set(by_to) == {"duty@city.example", "ops@city.example"}
    zh, tls_zh = by_to["duty@city.example"]
    en, tls_en = by_to["ops@city.example"]
    assert tls_zh and tls_en, "the server offered STARTTLS and required it: the notifier used it"
    assert "案卷已升级" in zh["Subject"] and "Case escalated" in en["Subject"] and zh["From"] == "gridcase@city.example"
    assert "承办" in zh.get_content() and "Owner" in en.get_content() and number in en.get_content()


def test_a_receiver_that_hangs_is_cut_off_and_does_not_hold_up_another(world):
    city, http, _ = world
    http.answers["/hangs"] = ["hang", 200]
    http.hang_seconds = 10.0
    city.subscribe(unit=city.station_id, events=["escalated"], channel="webhook", target=http.url("/hangs"))
    city.subscribe(unit=city.station_id, events=["escalated"], channel="webhook", target=http.url("/prompt"))
    case_id = city.report()
    city.escalate(case_id)
    acted = time.monotonic()
    [prompt] = [r for r in http.wait("/prompt", 1) if r.json["case"]["id"] == case_id]
    assert prompt.at - acted < 2.0, "the prompt receiver was not held up by the hanging one"
    tries = http.wait("/hangs", 2, timeout=30)
    assert tries[0].event_id == tries[1].event_id
    assert tries[1].at - acted < 8.0, "the hanging try was cut off after the timeout and tried again"


def test_a_4xx_is_given_up_at_once_listed_dead_and_sent_again_by_hand(world):
    city, http, _ = world
    http.answers["/gone"] = [410, 200]
    city.subscribe(unit=city.station_id, events=["escalated"], channel="webhook", target=http.url("/gone"))
    case_id = city.report()
    city.escalate(case_id)
    [refused] = http.wait("/gone", 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = city.cli("dead")
        line = next((x for x in listed.stdout.splitlines() if refused.event_id in x), None)
        if line:
            break
        time.sleep(0.2)
    assert line and "HTTP 410" in line, listed.stdout + listed.stderr
    time.sleep(0.6)
    assert len(http.at("/gone")) == 1, "a 410 is not retried"
    retried = city.cli("retry", line.split("\t")[0])
    assert retried.returncode == 0, retried.stderr
    again = http.wait("/gone", 2, timeout=20)
    assert again[1].event_id == refused.event_id and again[1].status == 200
    assert city.cli("retry", "999999").returncode != 0


@pytest.mark.parametrize("body, field", [
    ({"unit": "S?", "events": ["assigned"], "channel": "webhook", "target": "http://127.0.0.1:9/x"}, "unit"),
    ({"events": ["exploded"], "channel": "webhook", "target": "http://127.0.0.1:9/x"}, "events"),
    ({"events": ["assigned"], "channel": "fax", "target": "http://127.0.0.1:9/x"}, "channel"),
    ({"events": ["assigned"], "channel": "webhook", "target": "file:///etc/passwd"}, "target"),
    ({"events": ["assigned"], "channel": "email", "target": "duty at city"}, "target"),
    ({"events": ["assigned"], "channel": "webhook", "target": "http://127.0.0.1:9/x", "extra": 1}, "extra"),
    ({"events": "assigned", "channel": "webhook", "target": "http://127.0.0.1:9/x"}, "events"),
])
def test_a_bad_subscription_is_a_422_naming_the_field_and_stores_nothing(world, body, field):
    city, _, _ = world
    body = {"unit": city.station_id, **body} if "unit" not in body else body
    before = requests.get(f"{city.base}{SUBSCRIPTIONS}", headers=auth(city.admin), timeout=10).json()["items"]
    answer = requests.post(f"{city.base}{SUBSCRIPTIONS}", headers=auth(city.admin), json=body, timeout=10)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert field in {e["field"] for e in answer.json()["errors"]}
    after = requests.get(f"{city.base}{SUBSCRIPTIONS}", headers=auth(city.admin), timeout=10).json()["items"]
    assert after == before


def test_a_station_manages_its_own_subscriptions_only_and_never_sees_a_secret(world):
    city, http, _ = world
    other = "SC06-ST01" if city.station_id != "SC06-ST01" else "SC01-ST01"
    city.subscribe(city.station, expect=403, unit=other, events=["assigned"], channel="webhook",
                   target=http.url("/x"))
    city.subscribe(city.worker, expect=403, unit=city.grid, events=["assigned"], channel="inapp")
    mine = city.subscribe(city.worker, user="wang", events=["verification_due"], channel="inapp")
    theirs = city.subscribe(unit=other, events=["assigned"], channel="webhook", target=http.url("/x"))
    listed = requests.get(f"{city.base}{SUBSCRIPTIONS}", headers=auth(city.station), timeout=10).json()["items"]
    assert listed and all(s["unit"] == city.station_id for s in listed) and all("secret" not in s for s in listed)
    gone = requests.delete(f"{city.base}{SUBSCRIPTIONS}/{theirs['id']}", headers=auth(city.station), timeout=10)
    assert gone.status_code == 404
    tested = requests.post(f"{city.base}{SUBSCRIPTIONS}/{mine['id']}/test", headers=auth(city.worker), timeout=10)
    assert tested.status_code == 200 and tested.json()["delivered"] is True
    assert requests.delete(f"{city.base}{SUBSCRIPTIONS}/{mine['id']}", headers=auth(city.worker),
                           timeout=10).status_code == 204
    assert requests.delete(f"{city.base}{SUBSCRIPTIONS}/{mine['id']}", headers=auth(city.worker),
                           timeout=10).status_code == 404
    supervisor = token(city.data, "supervisor", user="sun")
    assert city.subscribe(supervisor, expect=403, unit=city.station_id, events=["assigned"], channel="inapp")


def test_a_test_notification_reaches_a_webhook_and_the_command_line_adds_lists_and_removes(world):
    city, http, _ = world
    added = city.cli("add", "--unit", city.station_id, "--event", "overdue", "--event", "warned", "--channel",
                     "webhook", "--target", http.url("/cli"), "--language", "en")
    assert added.returncode == 0, added.stderr
    made = json.loads(added.stdout)
    assert made["events"] == ["overdue", "warned"] and made["secret"]
    assert made["id"] in city.cli("list").stdout
    tested = city.cli("test", made["id"])
    assert tested.returncode == 0 and json.loads(tested.stdout)["delivered"] is True
    [hello] = http.wait("/cli", 1)
    assert hello.json["event"] == "test" and verify_signature(hello.headers["gridcase-signature"], made["secret"],
                                                              hello.body, time.time())
    bad = city.cli("add", "--unit", "NOWHERE", "--event", "overdue", "--channel", "inapp")
    assert bad.returncode == 1 and "unit:" in bad.stderr
    assert city.cli("remove", made["id"]).returncode == 0
    assert made["id"] not in city.cli("list").stdout
