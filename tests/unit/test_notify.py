"""Notifications without a network: what a step tells whom, which subscriptions hear it, the rows the
outbox writes with the step, the signatures (ours and DingTalk's), the retry schedule and the circuits,
and what a subscription may be and who may make it."""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
import sqlalchemy as sa

from services.escalation import handlers
from services.escalation.domain.calendar import WorkingCalendar
from services.escalation.notify import channels
from services.escalation.notify.channels import DeliveryError, Outlet
from services.escalation.notify.delivery import CircuitOpen, Circuits, RetryPolicy
from services.escalation.notify.events import Subscription, event_id
from services.escalation.notify.outbox import quiet_until
from services.escalation.notify.store import NotificationStore
from services.escalation.notify.subscriptions import SubscriptionError, Units, check, may_manage, url_problem
from services.escalation.store import notifications
from shared.auth import Identity
from shared.clock import FakeClock
from tests.unit.test_escalation_handlers import AREAS, COMMAND, STATION, WORKER, act, opened

UNITS = Units({"G1": "grid", "G2": "grid", "S1": "station", "S2": "station", "C1": "subcenter", "HQ": "hq"},
              frozenset({"water"}))


def subscription(id_="s-1", *, events=("assigned",), channel="webhook", unit=None, user=None, role=None,
                 quiet_hours=False) -> Subscription:
    return Subscription(id_, unit, user, role, tuple(events), channel, None if channel == "inapp" else
                        "https://receiver.example/hook", "k" * 32, "en", quiet_hours)


def rows(uow, **match) -> list[dict]:
    return [r for r in uow.store.notification_rows if all(r.get(k) == v for k, v in match.items())]


# -- what a step tells whom --------------------------------------------------------------------------------------

def test_a_new_case_tells_its_owner_in_app_without_any_subscription():
    uow = opened(FakeClock())
    [row] = uow.store.notification_rows
    assert (row["event"], row["channel"], row["recipient"], row["status"]) == ("assigned", "inapp", "unit:G1", "inapp")
    assert row["payload"]["case"]["number"] == "20260105-000001" and row["payload"]["to"] == [
        {"unit": "G1", "role": "grid_worker"}]


def test_a_notification_keeps_whose_own_step_it_tells_of_the_reporter_of_an_opening_or_the_actor():
    """The opening is the system's step, but the case is the reporter's doing: their bell leaves it out
    (``NotificationStore.inbox``); a step of the scheduler is nobody's."""
    clock = FakeClock()
    uow = opened(clock)
    [row] = uow.store.notification_rows
    assert row["caused_by"] == "wang"
    act(uow, clock, WORKER, "escalate", reason="needs a ladder")
    assert {r["caused_by"] for r in rows(uow, event="escalated")} | {
        r["caused_by"] for r in rows(uow, event="assigned", recipient="unit:S1")} == {WORKER.user}
    clock.advance(timedelta(days=60))
    handlers.escalate_due(100, uow, clock=clock)
    assert {r["caused_by"] for r in rows(uow, event="overdue")} == {None}

def test_the_bell_leaves_out_the_readers_own_steps_and_shows_them_to_the_others_of_the_inbox():
    """The rows the outbox wrote for a case ``wang`` filed and a station's escalation, read through the
    store's queries (SQLite): ``wang`` sees the escalation only, ``li`` of the same grid both."""
    clock = FakeClock()
    uow = opened(clock)
    engine = sa.create_engine("sqlite://")
    notifications.create(engine)
    rows_ = [dict(r) for r in uow.store.notification_rows]
    rows_.append({**rows_[0], "event_id": "e-station", "event": "urged", "subscription_id": "default.urged:unit:G1",
                  "caused_by": "zhao"})
    with engine.begin() as db:
        store = NotificationStore(db)
        store.add(rows_)
        inbox = ["unit:G1", "role:grid_worker"]
        mine = store.inbox(inbox + ["user:wang"], unread=False, limit=10, reader="wang")
        theirs = store.inbox(inbox + ["user:li"], unread=False, limit=10, reader="li")
        assert [r.event for r in mine] == ["urged"] and store.unread_count(inbox, reader="wang") == 1
        assert [r.event for r in theirs] == ["urged", "assigned"] and store.unread_count(inbox, reader="li") == 2

def test_an_escalation_tells_the_new_owner_and_a_station_webhook_hears_both_events():
    clock = FakeClock()
    uow = opened(clock)
    uow.store.subscriptions = [subscription(unit="S1", events=("escalated", "assigned"))]
    act(uow, clock, WORKER, "escalate", reason="needs a ladder")
    assert [r["recipient"] for r in rows(uow, event="assigned", channel="inapp")] == ["unit:G1", "unit:S1"]
    hooks = rows(uow, channel="webhook")
    assert sorted(r["event"] for r in hooks) == ["assigned", "escalated"]
    assert len({r["event_id"] for r in hooks}) == 2, "one event id per event, the same for every subscriber"
    assert all(r["status"] == "pending" and r["subscription_id"] == "s-1" for r in hooks)


def test_the_scheduler_telling_headquarters_a_case_is_overdue_reaches_command_in_app():
    clock = FakeClock()
    uow = opened(clock)
    clock.advance(timedelta(days=60))
    handlers.escalate_due(100, uow, clock=clock)
    overdue = rows(uow, event="overdue", channel="inapp")
    assert [r["recipient"] for r in overdue] == ["role:command"], "there is no level above headquarters"
    assert {r["recipient"] for r in rows(uow, event="assigned")} >= {"unit:S1", "unit:C1", "role:command"}


def test_a_resolved_case_is_due_for_verification_at_its_verifier_and_a_failed_one_is_rework():
    """The grid worker fixed it on the spot: the station checks it (``permissions.verifying_level``)."""
    clock = FakeClock()
    uow = opened(clock)
    uow.store.subscriptions = [subscription(role="station", events=("verification_due",), channel="inapp"),
                               subscription(role="grid_worker", events=("rework",), channel="inapp")]
    act(uow, clock, WORKER, "resolve", note="bulb replaced")
    [due] = rows(uow, event="verification_due", subscription_id="s-1")
    assert due["recipient"] == "role:station" and due["payload"]["to"] == [{"unit": "S1", "role": "station"}]
    from shared.messages import events

    handlers.verify_case(events.CaseVerified(case_id="c1", passed=False, verifier="li", at=clock.now(),
                                             note="still dark"), uow, clock=clock)
    assert len(rows(uow, event="rework", recipient="role:grid_worker")) == 1


def test_without_subscriptions_rework_verification_and_urges_reach_whom_they_concern_in_app():
    """The defaults: the station hears of the grid worker's fix to check, the grid worker of rework, the
    holder and the level above of an urge (督办)."""
    clock = FakeClock()
    uow = opened(clock)
    act(uow, clock, WORKER, "resolve", note="bulb replaced")
    [due] = rows(uow, event="verification_due")
    assert (due["subscription_id"], due["recipient"]) == ("default.verification_due:unit:S1", "unit:S1")
    from shared.messages import events

    handlers.verify_case(events.CaseVerified(case_id="c1", passed=False, verifier="li", at=clock.now(),
                                             note="still dark"), uow, clock=clock)
    assert {r["recipient"] for r in rows(uow, event="rework")} == {"unit:G1"}
    act(uow, clock, COMMAND, "urge", note="residents keep calling", respond_within="2 hours")
    assert {r["recipient"] for r in rows(uow, event="urged")} == {"unit:G1", "unit:S1"}


def test_subscriptions_hear_only_what_their_filters_let_through():
    clock = FakeClock()
    uow = opened(clock)
    uow.store.reporters["c1"] = "wang"
    uow.store.subscriptions = [
        subscription("own-station", unit="S1", events=("escalated",)),
        subscription("other-station", unit="S2", events=("escalated",)),
        subscription("wrong-event", unit="S1", events=("warned",)),
        subscription("station-role", role="station", events=("escalated",)),
        subscription("subcenter-role", role="subcenter", events=("escalated",)),
        subscription("the-reporter", user="wang", events=("escalated",)),
        subscription("someone-else", user="li", events=("escalated",)),
    ]
    act(uow, clock, WORKER, "escalate", reason="r")
    assert {r["subscription_id"] for r in rows(uow, channel="webhook")} == {"own-station", "station-role",
                                                                            "the-reporter"}


def test_event_ids_name_the_step_so_two_actions_at_one_instant_are_two_events():
    clock = FakeClock()
    uow = opened(clock)
    uow.store.subscriptions = [subscription(unit="G1", events=("returned", "escalated"))]
    act(uow, clock, WORKER, "escalate", reason="r")
    act(uow, clock, STATION, "return", level=1, reason="yours")
    ids = [r["event_id"] for r in rows(uow, channel="webhook")]
    assert len(ids) == len(set(ids)) == 2
    assert ids[0] == event_id("c1", 2, 0, "escalated")


def test_quiet_hours_hold_a_notification_until_the_working_day_but_not_for_an_urgent_case():
    clock = FakeClock(datetime(2026, 1, 5, 20, 0, tzinfo=UTC))  # after work: these cases keep office hours in UTC
    uow = opened(clock)
    uow.store.subscriptions = [subscription(unit="S1", events=("escalated",), quiet_hours=True)]
    act(uow, clock, WORKER, "escalate", reason="r")
    [row] = rows(uow, channel="webhook")
    held = row["next_attempt_at"] - row["created_at"]
    assert timedelta(hours=12) < held < timedelta(hours=13), "until 08:30 the next morning"
    urgent = opened(clock)
    urgent.store.cases["c1"].severity = "urgent"
    urgent.store.subscriptions = [subscription(unit="S1", events=("escalated",), quiet_hours=True)]
    act(urgent, clock, WORKER, "escalate", reason="r")
    [row] = rows(urgent, channel="webhook")
    assert row["next_attempt_at"] - row["created_at"] < timedelta(seconds=1)


def test_quiet_until_is_the_next_working_period_and_nothing_inside_one():
    calendar = WorkingCalendar(time_zone="Asia/Shanghai")
    inside = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 local
    assert quiet_until(calendar, inside) is None
    saturday = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
    assert quiet_until(calendar, saturday) == datetime(2026, 1, 12, 0, 30, tzinfo=UTC)  # Monday 08:30 local


def test_a_department_assignment_is_addressed_to_the_department():
    from shared.departments import Department

    clock = FakeClock()
    uow = opened(clock)
    uow.store.city_departments = [Department("water", "自来水公司", "Water", "HQ", ("street_light",), ())]
    act(uow, clock, COMMAND, "assign_department", department="water", role="co")
    assert [r["recipient"] for r in rows(uow, event="assigned", channel="inapp")][-1] == "unit:water"


# -- signatures --------------------------------------------------------------------------------------------------

def test_the_webhook_signature_is_hmac_sha256_over_time_dot_body_and_a_receiver_checks_it():
    body = b'{"id":"e1","event":"escalated"}'
    header = channels.signature("s3cret", body, 1767600000)
    expected = hmac.new(b"s3cret", b"1767600000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1767600000,v1={expected}"
    assert channels.verify_signature(header, "s3cret", body, now=1767600010)
    assert not channels.verify_signature(header, "s3cret", body + b" ", now=1767600010), "a changed body"
    assert not channels.verify_signature(header, "other", body, now=1767600010), "another secret"
    assert not channels.verify_signature(header, "s3cret", body, now=1767600000 + 3600), "a replay an hour later"
    assert not channels.verify_signature("v1=abc", "s3cret", body, now=1767600010)


def test_a_dingtalk_url_is_signed_as_dingtalk_documents():
    secret, timestamp = "SECa1b2c3", 1767600000123
    url = channels.dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=T", secret, timestamp)
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["T"] and query["timestamp"] == [str(timestamp)]
    # DingTalk's own recipe: base64(HMAC-SHA256(secret, f"{timestamp}\n{secret}")), then URL-encoded
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]
    assert f"sign={quote_plus(base64.b64encode(digest))}" in url


def test_robot_messages_are_markdown_in_the_subscribers_language():
    payload = {"id": "e", "event": "overdue", "urgent": True, "at": "2026-01-05T09:00:00.000Z",
               "case": {"id": "c1", "number": "20260105-000001", "category": "street_light", "level": 2,
                        "owners": {"station": {"id": "S1", "name": "东关站"}}, "deadline": "2026-01-05T09:00:00.000Z"},
               "step": {"note": "deadline passed"}}
    payload = channels.with_link(payload, Outlet(public_url="https://gc.example"))
    title, text = channels.markdown(payload, "zh", Outlet())
    assert title.startswith("紧急 · 案卷超期") and "东关站" in text and "17:00" in text
    assert "[打开案卷](https://gc.example/board/#case=c1)" in text
    title, text = channels.markdown(payload, "en", Outlet())
    assert "Case overdue" in title and "**Owner**: 东关站" in text


# -- retries and circuits ------------------------------------------------------------------------------------------

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_retries_back_off_exponentially_with_jitter_and_stop_after_a_day():
    policy = RetryPolicy(initial=10, maximum=3600)
    failure = DeliveryError("HTTP 503", retryable=True)
    first = policy.next_attempt(1, START, START, failure) - START
    assert timedelta(seconds=10) <= first <= timedelta(seconds=20)
    fifth = policy.next_attempt(5, START, START, failure) - START
    assert timedelta(seconds=160) <= fifth <= timedelta(seconds=170)
    assert policy.next_attempt(30, START, START, failure) - START == timedelta(seconds=3600), "at most an hour"
    late = START + timedelta(hours=23, minutes=59)
    assert policy.next_attempt(30, START, late, failure) is None, "no attempt after 24 hours"


def test_a_4xx_is_not_retried_but_408_429_and_a_retry_after_are_honoured():
    policy = RetryPolicy(initial=10)
    assert policy.next_attempt(1, START, START, DeliveryError("HTTP 404", retryable=False)) is None
    slow_down = DeliveryError("HTTP 429", retryable=True, retry_after=120)
    assert policy.next_attempt(1, START, START, slow_down) - START >= timedelta(seconds=120)


def test_a_circuit_opens_after_repeated_failures_for_its_endpoint_only():
    circuits = Circuits(fail_max=3, reset_timeout=3600)
    calls = []

    def fail():
        calls.append(1)
        raise DeliveryError("HTTP 503", retryable=True)

    for _ in range(3):
        with pytest.raises(DeliveryError):
            circuits.call("https://dead:443", fail)
    with pytest.raises(CircuitOpen):
        circuits.call("https://dead:443", fail)
    assert len(calls) == 3, "an open circuit does not call the receiver"
    circuits.call("https://alive:443", lambda: None)


def test_a_receiver_that_refuses_with_a_4xx_is_up_and_does_not_open_its_circuit():
    circuits = Circuits(fail_max=2, reset_timeout=3600)

    def refuse():
        raise DeliveryError("HTTP 404", retryable=False)

    for _ in range(5):
        with pytest.raises(DeliveryError):
            circuits.call("https://up:443", refuse)


def test_after_the_reset_timeout_one_trial_closes_the_circuit_again():
    circuits = Circuits(fail_max=1, reset_timeout=0)
    with pytest.raises(DeliveryError):
        circuits.call("https://flaky:443", lambda: (_ for _ in ()).throw(DeliveryError("x", retryable=True)))
    circuits.call("https://flaky:443", lambda: None)
    assert circuits["https://flaky:443"].current_state == "closed"


# -- what a subscription may be ------------------------------------------------------------------------------------

GOOD = {"unit": "S1", "events": ["assigned", "overdue"], "channel": "webhook", "target": "https://receiver.example/h"}


def public(host, port):
    return ["93.184.215.14"]


@pytest.mark.parametrize("change, field", [
    ({"events": ["exploded"]}, "events"),
    ({"events": []}, "events"),
    ({"events": "assigned"}, "events"),
    ({"unit": "NOWHERE"}, "unit"),
    ({"unit": None}, "unit"),
    ({"channel": "pigeon"}, "channel"),
    ({"target": "ftp://receiver.example/h"}, "target"),
    ({"target": "javascript:alert(1)"}, "target"),
    ({"target": "https://"}, "target"),
    ({"channel": "email", "target": "not-an-address"}, "target"),
    ({"channel": "email", "target": "ops@example.org", "secret": "x" * 20}, "secret"),
    ({"channel": "inapp", "target": "https://receiver.example/h"}, "target"),
    ({"role": "janitor"}, "role"),
    ({"language": "fr"}, "language"),
    ({"quiet_hours": "yes"}, "quiet_hours"),
    ({"secret": "short"}, "secret"),
    ({"unit": "S1\u0000"}, "unit"),
])
def test_a_bad_subscription_names_its_field(change, field):
    with pytest.raises(SubscriptionError) as refused:
        check({**GOOD, **change}, UNITS, allow_private=False, resolve=public)
    assert refused.value.field == field


def test_a_good_subscription_is_completed_with_a_webhook_secret_and_defaults():
    fields = check(GOOD, UNITS, allow_private=False, resolve=public)
    assert len(fields["secret"]) >= 32 and fields["language"] == "zh" and fields["quiet_hours"] is False
    assert check({**GOOD, "unit": "water"}, UNITS, allow_private=False, resolve=public)["unit"] == "water"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "172.16.5.5", "169.254.169.254", "::1",
                                     "fd00::1", "0.0.0.0", "100.64.0.1"])
def test_a_webhook_on_an_internal_address_is_refused_unless_the_city_allows_it(address):
    assert "internal targets are refused" in url_problem("https://h.example/x", False, lambda h, p: [address])
    assert url_problem("https://h.example/x", True, lambda h, p: [address]) is None


def test_a_host_that_does_not_resolve_is_refused():
    def nowhere(host, port):
        raise OSError("no such host")

    assert "does not resolve" in url_problem("https://nowhere.invalid/x", False, nowhere)


@pytest.mark.parametrize("who, sub, allowed", [
    (Identity("admin", "root"), {"role": "station"}, True),
    (Identity("station", "li", "S1"), {"unit": "S1"}, True),
    (Identity("station", "li", "S1"), {"unit": "S2"}, False),
    (Identity("station", "li", "S1"), {"role": "station"}, False),
    (Identity("subcenter", "he", "C1"), {"unit": "C1"}, True),
    (Identity("subcenter", "he", "C1"), {"unit": "S1"}, False),
    (Identity("command", "chen"), {"unit": "HQ"}, True),
    (Identity("command", "chen"), {"unit": "S1"}, False),
    (Identity("department", "w", department="water"), {"unit": "water"}, True),
    (Identity("department", "w", department="water"), {"unit": "S1"}, False),
    (Identity("grid_worker", "wang", "G1"), {"user": "wang"}, True),
    (Identity("grid_worker", "wang", "G1"), {"user": "li"}, False),
    (Identity("grid_worker", "wang", "G1"), {"unit": "G1"}, False),
])
def test_only_an_admin_a_units_head_or_the_person_may_manage_a_subscription(who, sub, allowed):
    assert may_manage(who, sub, UNITS) is allowed


def test_areas_fixture_matches_the_units_the_checks_know():
    assert set(AREAS) <= set(UNITS.areas)


def test_an_urge_tells_who_holds_the_case_and_the_level_above():
    clock = FakeClock()
    uow = opened(clock)
    uow.store.subscriptions = [subscription(role="grid_worker", events=("urged",), channel="inapp"),
                               subscription("above", role="station", events=("urged",), channel="inapp")]
    act(uow, clock, COMMAND, "urge", note="residents keep calling", respond_within="2 hours")
    urged = [r for r in rows(uow, event="urged") if not r["subscription_id"].startswith("default.")]
    assert {r["subscription_id"] for r in urged} == {"s-1", "above"}
    assert urged[0]["payload"]["to"] == [{"unit": "G1", "role": "grid_worker"}, {"unit": "S1", "role": "station"}]


def test_the_real_resolver_refuses_loopback_literals_and_localhost():
    assert "internal targets are refused" in url_problem("http://127.0.0.1:9/hook", False)
    assert "internal targets are refused" in url_problem("http://localhost:9/hook", False)
    assert "internal targets are refused" in url_problem("http://[::1]:9/hook", False)


def test_an_early_warning_from_elsewhere_is_written_once_and_shown_to_its_sub_center_by_default():
    from services.escalation.notify.events import Addressee
    from services.escalation.notify.outbox import enqueue
    from tests.unit.fakes import FakeCaseStore, FakeUnitOfWork

    uow = FakeUnitOfWork(FakeCaseStore(AREAS))
    uow.store.subscriptions = [subscription("ops", unit="C1", events=("early_warning",)),
                               subscription("elsewhere", unit="C2", events=("early_warning",))]
    arguments = dict(event="early_warning", event_id="warning-7", units=["G1", "S1", "C1", "HQ"],
                     addressees=[Addressee("C1", "subcenter")],
                     payload={"warning": {"id": "warning-7", "rule": "street_light", "reports": ["c1", "c2"]}})
    assert enqueue(uow, **arguments) == 2
    assert enqueue(uow, **arguments) == 0, "the same event id again writes nothing"
    by_subscriber = {r["subscription_id"]: r for r in uow.store.notification_rows}
    assert set(by_subscriber) == {"ops", "default.early_warning:unit:C1"}
    assert by_subscriber["ops"]["payload"]["warning"]["reports"] == ["c1", "c2"]
    assert by_subscriber["ops"]["payload"]["event"] == "early_warning"


def test_an_accepted_report_tells_its_new_owner_and_a_refused_one_the_place_it_came_from():
    from services.escalation.domain.actions import perform
    from services.escalation.notify.events import notices
    from tests.support.cases import NOW, STATION, new_case

    accepted, refused = new_case(pending=True), new_case(pending=True)
    told = notices(accepted, perform(accepted, "accept", STATION, NOW), 2)
    assert [(n.event, [a.unit for a in n.addressees]) for n in told] == [("accepted", ["G1"]), ("assigned", ["G1"])]
    told = notices(refused, perform(refused, "refuse", STATION, NOW, reason="already_fixed"), 2)
    assert [(n.event, [a.unit for a in n.addressees]) for n in told] == [("refused", ["G1"])]
