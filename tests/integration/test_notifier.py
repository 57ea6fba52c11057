"""The notifier's tick on a real database: a backlog for a receiver whose circuit is open is put off
untried and does not hide another receiver's notification behind it; a removed subscription's
notification is given up."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.escalation import bootstrap
from services.escalation.notify.worker import Notifier
from services.escalation.store import notifications
from shared.config import Settings

DEAD, ALIVE = "http://127.0.0.1:9/dead", "http://127.0.0.1:9/alive-but-another-port"


def test_a_dead_receivers_backlog_is_put_off_and_does_not_hide_another_receivers_notification(tmp_path):
    service = bootstrap.build(Settings(data_dir=tmp_path, secret="t" * 40, notify_allow_private=True), web=False)
    now = datetime.now(UTC) - timedelta(seconds=1)
    with service.uow() as uow:
        store = uow.store.notifications
        dead = store.add_subscription({"role": "station", "events": ["assigned"], "channel": "webhook",
                                       "target": DEAD, "secret": "s" * 32, "language": "zh"}, "test", now)
        other = store.add_subscription({"role": "station", "events": ["assigned"], "channel": "webhook",
                                        "target": "http://127.0.0.2:9/hook", "secret": "s" * 32, "language": "zh"},
                                       "test", now)
        gone = store.add_subscription({"role": "station", "events": ["assigned"], "channel": "inapp",
                                       "language": "zh"}, "test", now)

        def row(n, subscription, at):
            return {"event_id": f"e-{n}", "subscription_id": subscription, "event": "assigned", "case_id": None,
                    "channel": "webhook", "recipient": None, "language": "zh", "payload": {"id": f"e-{n}"},
                    "status": "pending", "attempts": 0, "next_attempt_at": at, "created_at": at}

        store.add([row(n, dead, now - timedelta(seconds=600 - n)) for n in range(450)]
                  + [row(450, other, now), row(451, gone, now)])
        store.remove_subscription(gone, now)
        uow.commit()
    notifier = Notifier(service, batch=200)
    notifier.circuits["http://127.0.0.1:9"].open()
    try:
        taken, _ = notifier.tick()
    finally:
        notifier.stop()
    with service.engine.connect() as db:
        rows = {r.event_id: r for r in db.execute(sa.select(notifications))}
    assert taken == 1 and rows["e-450"].attempts == 1, "the other receiver's notification was taken"
    put_off = [r for r in rows.values() if r.subscription_id == dead]
    assert all(r.attempts == 0 for r in put_off), "nothing was tried against the open circuit"
    assert sum(r.next_attempt_at > now + timedelta(seconds=30) for r in put_off) >= 400
    assert rows["e-451"].status == "dead"
    service.engine.dispose()
