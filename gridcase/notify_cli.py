"""``gridcase notify add|list|remove|test|dead|retry``: subscriptions and deliveries, from the command
line (with the database's authority: an admin's). The same checks as the HTTP API
(``services.escalation.notify.subscriptions``); a problem names its field and exits 1."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from services.escalation.notify.events import CHANNELS, EVENTS, LANGUAGES

DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False), default=None)


def _escalation(data_dir):
    from services.escalation import bootstrap
    from shared.config import from_env

    settings = from_env(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return bootstrap.build(settings, web=False)


@click.group()
def notify():
    """Notifications: subscriptions (who is told what, where) and deliveries (dead ones re-sent)."""


@notify.command("add")
@click.option("--unit", default=None, help="an area id or a department id")
@click.option("--user", default=None, help="a person (a token's subject)")
@click.option("--role", default=None, help="the role notices are addressed to (station, subcenter, …)")
@click.option("--event", "events", multiple=True, required=True, help=f"repeat for several: {', '.join(EVENTS)}")
@click.option("--channel", type=click.Choice(CHANNELS), required=True)
@click.option("--target", default=None, help="an http(s) URL (webhook, wecom, dingtalk) or an e-mail address")
@click.option("--secret", default=None, help="webhook: HMAC key (made when not given); dingtalk: 加签 secret")
@click.option("--language", type=click.Choice(LANGUAGES), default="zh", show_default=True)
@click.option("--quiet-hours", is_flag=True, help="not urgent: wait for the working hours")
@DATA_DIR
def add(unit, user, role, events, channel, target, secret, language, quiet_hours, data_dir):
    """Add a subscription; prints it as JSON (a webhook's secret included, this once)."""
    from services.escalation.notify.subscriptions import SubscriptionError, check

    service = _escalation(data_dir)
    body = {"unit": unit, "user": user, "role": role, "events": list(events), "channel": channel,
            "target": target, "secret": secret, "language": language, "quiet_hours": quiet_hours}
    with service.uow() as uow:
        try:
            fields = check(body, uow.store.notifications.city_units(),
                           allow_private=service.settings.notify_allow_private)
        except SubscriptionError as problem:
            raise click.ClickException(str(problem)) from None
        new_id = uow.store.notifications.add_subscription(fields, "cli", service.clock.now())
        made = uow.store.notifications.get_subscription(new_id)
        uow.commit()
    shown = made.to_dict() | ({"secret": made.secret} if made.channel == "webhook" else {})
    click.echo(json.dumps(shown, ensure_ascii=False))


@notify.command("list")
@DATA_DIR
def list_(data_dir):
    """Every subscription, one a line: id, filters, events, channel, target."""
    with _escalation(data_dir).uow() as uow:
        found = uow.store.notifications.all_subscriptions()
    for s in found:
        who = " ".join(f"{k}={v}" for k, v in (("unit", s.unit), ("user", s.user), ("role", s.role)) if v)
        quiet = "\tquiet_hours" if s.quiet_hours else ""
        click.echo(f"{s.id}\t{who}\t{','.join(s.events)}\t{s.channel}\t{s.target or '-'}\t{s.language}{quiet}")
    click.echo(f"{len(found)} subscription(s)", err=True)


@notify.command("remove")
@click.argument("subscription_id")
@DATA_DIR
def remove(subscription_id, data_dir):
    """Remove a subscription (its pending notifications are given up)."""
    service = _escalation(data_dir)
    with service.uow() as uow:
        gone = uow.store.notifications.remove_subscription(subscription_id, service.clock.now())
        uow.commit()
    if not gone:
        raise click.ClickException(f"no subscription {subscription_id}")
    click.echo(f"removed {subscription_id}")


@notify.command("test")
@click.argument("subscription_id")
@DATA_DIR
def test(subscription_id, data_dir):
    """Send a test notification to a subscription now; exit 1 if the receiver did not take it."""
    from services.escalation.notify.channels import Outlet
    from services.escalation.notify.worker import send_test

    service = _escalation(data_dir)
    with service.uow() as uow:
        found = uow.store.notifications.get_subscription(subscription_id)
    if found is None:
        raise click.ClickException(f"no subscription {subscription_id}")
    result = send_test(found, Outlet.of(service.settings), service.clock.now())
    click.echo(json.dumps(result, ensure_ascii=False))
    if not result["delivered"]:
        raise SystemExit(1)


@notify.command("dead")
@click.option("--limit", type=int, default=1000, show_default=True)
@DATA_DIR
def dead(limit, data_dir):
    """The notifications given up (newest first): id, event, event id, channel, attempts, last error."""
    with _escalation(data_dir).uow() as uow:
        rows = uow.store.notifications.dead(limit)
    for r in rows:
        click.echo(f"{r.id}\t{r.event}\t{r.event_id}\t{r.subscription_id}\t{r.channel}\t{r.attempts}\t"
                   f"{r.last_error or ''}")
    click.echo(f"{len(rows)} dead notification(s)", err=True)


@notify.command("retry")
@click.argument("notification_id", type=int)
@DATA_DIR
def retry(notification_id, data_dir):
    """Send a dead notification again (pending now, with a new 24 hours of retries; same event id)."""
    with _escalation(data_dir).uow() as uow:
        done = uow.store.notifications.retry(notification_id, datetime.now(UTC))
        uow.commit()
    if not done:
        raise click.ClickException(f"no dead notification {notification_id} with a subscription")
    click.echo(f"notification {notification_id} is pending again")
