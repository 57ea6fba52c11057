"""``/escalation/v1/subscriptions`` (who is told what, and where) and ``/escalation/v1/notifications``
(the caller's in-app notifications: the board's bell). Routes on escalation's blueprint."""
from __future__ import annotations

from datetime import UTC, datetime

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, fields, validate

from services.escalation.api import blp
from services.escalation.notify.channels import Outlet
from services.escalation.notify.events import CHANNELS, EVENTS, LANGUAGES
from services.escalation.notify.subscriptions import ROLES, SubscriptionError, check, may_manage
from services.escalation.notify.worker import send_test
from shared.access import Decision
from shared.clock import isoformat
from shared.fields import JsonBoolean, JsonInteger, QueryBoolean, QueryInteger
from shared.web import access, current_service, deny, identity
from shared.words import Said


class SubscriptionIn(Schema):
    """A new subscription; what each field may be is checked by ``notify.subscriptions.check`` (422
    naming the field)."""

    class Meta:
        unknown = RAISE

    unit = fields.String(allow_none=True, metadata={"description": "an area id or a department id"})
    user = fields.String(allow_none=True, metadata={"description": "a person (a token's subject)"})
    role = fields.String(allow_none=True, metadata={"description": f"one of {', '.join(ROLES)}"})
    events = fields.List(fields.String(), required=True, metadata={"description": f"any of {', '.join(EVENTS)}"})
    channel = fields.String(required=True, metadata={"description": f"one of {', '.join(CHANNELS)}"})
    target = fields.String(allow_none=True, metadata={
        "description": "webhook, wecom, dingtalk: an http(s) URL; email: an address; inapp: none"})
    secret = fields.String(allow_none=True, metadata={
        "description": "webhook: the HMAC key of Gridcase-Signature (made when not given, shown once); "
                       "dingtalk: the robot's 加签 secret"})
    language = fields.String(metadata={"description": f"one of {', '.join(LANGUAGES)} (default zh)"})
    quiet_hours = JsonBoolean(metadata={
        "description": "a notification about a case that is not urgent waits for its calendar's working hours"})


class SubscriptionOut(Schema):
    id = fields.String()
    unit = fields.String(allow_none=True)
    user = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    events = fields.List(fields.String())
    channel = fields.String()
    target = fields.String(allow_none=True)
    language = fields.String()
    quiet_hours = fields.Boolean()
    signed = fields.Boolean(metadata={"description": "it has a secret (never shown again)"})
    secret = fields.String(metadata={"description": "only in the answer to POST: the webhook's secret"})


class SubscriptionListOut(Schema):
    items = fields.List(fields.Nested(SubscriptionOut))


class TestOut(Schema):
    id = fields.String(metadata={"description": "the test notification's event id"})
    delivered = fields.Boolean()
    detail = fields.String()


@blp.route("/subscriptions")
class Subscriptions(MethodView):
    @access("subscription.manage")
    @blp.arguments(SubscriptionIn)
    @blp.response(201, SubscriptionOut)
    @blp.alt_response(403, description="the caller may not manage subscriptions of this unit")
    def post(self, body):
        """Subscribe a unit, a person or a role to events, on a channel. Admins may subscribe anyone; the
        head of a unit its own unit (a station or sub-center its area, command headquarters, a department
        itself); a person themselves (``user`` alone). A webhook's secret, made when none is given, is
        in this answer only.

        ``POST /escalation/v1/subscriptions`` with ``{"unit": "SC01-ST03", "events": ["assigned",
        "overdue"], "channel": "webhook", "target": "https://ops.example.org/gridcase", "language": "en"}``
        → ``201`` ``{"id": "…", "unit": "SC01-ST03", "events": [...], "channel": "webhook", "secret": "…", …}``
        """
        caller = identity()
        service = current_service()
        with service.uow() as uow:
            units = uow.store.notifications.city_units()
            try:
                fields_ = check(body, units, allow_private=service.settings.notify_allow_private)
            except SubscriptionError as problem:
                abort(422, errors={problem.field: [problem.detail]})
            if not may_manage(caller, fields_, units):
                deny(caller, "subscription.manage", Decision.FORBIDDEN,
                     message="only an admin, the head of the unit it names or the person it names may subscribe")
            new_id = uow.store.notifications.add_subscription(fields_, caller.user, service.clock.now())
            made = uow.store.notifications.get_subscription(new_id)
            uow.commit()
        answer = made.to_dict()
        if made.channel == "webhook":
            answer["secret"] = made.secret
        return answer

    @access("subscription.list")
    @blp.response(200, SubscriptionListOut)
    def get(self):
        """The subscriptions the caller manages (admins and supervisors: all), oldest first; never a secret.

        ``GET /escalation/v1/subscriptions`` → ``{"items": [{"id", "unit", "user", "role", "events",
        "channel", "target", "language", "quiet_hours", "signed"}]}``
        """
        caller = identity()
        with current_service().uow() as uow:
            units = uow.store.notifications.city_units()
            found = uow.store.notifications.all_subscriptions()
        seen = [s for s in found if caller.role == "supervisor" or may_manage(caller, vars(s), units)]
        return {"items": [s.to_dict() for s in seen]}


def _managed(subscription_id: str, caller, uow):
    found = uow.store.notifications.get_subscription(subscription_id)
    if found is None or not may_manage(caller, vars(found), uow.store.notifications.city_units()):
        deny(caller, "subscription.manage", message="no such subscription")
    return found


@blp.route("/subscriptions/<subscription_id>")
class SubscriptionDetail(MethodView):
    @access("subscription.manage")
    @blp.response(204)
    @blp.alt_response(404, description="no such subscription among those the caller manages")
    def delete(self, subscription_id):
        """Remove a subscription; its notifications still pending are given up (``dead``)."""
        caller = identity()
        service = current_service()
        with service.uow() as uow:
            _managed(subscription_id, caller, uow)
            uow.store.notifications.remove_subscription(subscription_id, service.clock.now())
            uow.commit()


@blp.route("/subscriptions/<subscription_id>/test")
class SubscriptionTest(MethodView):
    @access("subscription.manage")
    @blp.response(200, TestOut)
    @blp.alt_response(404, description="no such subscription among those the caller manages")
    def post(self, subscription_id):
        """Send a test notification (event ``test``) to the subscription's target now, once, without
        retries; the answer says whether the receiver took it, and if not why.

        ``POST /escalation/v1/subscriptions/6f1c…/test`` → ``{"id": "…", "delivered": false,
        "detail": "HTTP 404: …"}``
        """
        caller = identity()
        service = current_service()
        with service.uow() as uow:
            found = _managed(subscription_id, caller, uow)
        return send_test(found, Outlet.of(service.settings), service.clock.now())


class InboxArgs(Schema):
    class Meta:
        unknown = RAISE

    unread = QueryBoolean(load_default=False, metadata={"description": "only those not read yet"})
    limit = QueryInteger(load_default=50, validate=validate.Range(1, 200))
    before = QueryInteger(validate=validate.Range(1, 2**62), metadata={
        "description": "only notifications with a smaller id (the next page)"})


class NotificationOut(Schema):
    id = fields.Integer()
    event_id = fields.String()
    event = fields.String()
    case_id = fields.String(allow_none=True)
    at = fields.String(metadata={"description": "ISO 8601 UTC: when it was written"})
    read = fields.Boolean()
    payload = fields.Dict(metadata={"description": "what a webhook would receive: event, case, step"})


class InboxOut(Schema):
    items = fields.List(fields.Nested(NotificationOut))
    unread = fields.Integer(metadata={"description": "how many of the caller's notifications are unread"})


class ReadIn(Schema):
    class Meta:
        unknown = RAISE

    ids = fields.List(JsonInteger(validate=validate.Range(1, 2**62)), validate=validate.Length(max=500))
    all = JsonBoolean(metadata={"description": "true: mark every notification of the caller read"})


def recipients(caller) -> list[str]:
    """The in-app inboxes a caller reads: their own (``user:``), their role's (``role:``; headquarters is
    ``role:command``) and their unit's (``unit:`` area or department)."""
    keys = [f"user:{caller.user}", f"role:{caller.role}"]
    keys += [f"unit:{unit}" for unit in (caller.area, caller.department) if unit]
    return keys


@blp.route("/notifications")
class Notifications(MethodView):
    @access("notification.read")
    @blp.arguments(InboxArgs, location="query")
    @blp.response(200, InboxOut)
    def get(self, args):
        """The caller's in-app notifications (the bell), newest first, and how many are unread; never
        one of the caller's own steps (a case they filed arriving in their grid's inbox, an action they took).

        ``GET /escalation/v1/notifications?unread=1`` → ``{"items": [{"id": 42, "event": "assigned",
        "case_id": "…", "at": "…", "read": false, "payload": {"case": {"number", …}, "step": {…}}}],
        "unread": 1}``
        """
        caller = identity()
        keys = recipients(caller)
        with current_service().uow() as uow:
            rows = uow.store.notifications.inbox(keys, unread=args["unread"], limit=args["limit"],
                                                 before=args.get("before"), reader=caller.user)
            unread = uow.store.notifications.unread_count(keys, reader=caller.user)
        return {"items": [{"id": r.id, "event_id": r.event_id, "event": r.event, "case_id": r.case_id,
                           "at": isoformat(r.created_at), "read": r.read_at is not None, "payload": r.payload}
                          for r in rows], "unread": unread}


@blp.route("/notifications/read")
class NotificationsRead(MethodView):
    @access("notification.read")
    @blp.arguments(ReadIn)
    @blp.response(200, InboxOut)
    def post(self, body):
        """Mark the caller's notifications read: ``{"ids": [41, 42]}`` or ``{"all": true}``; answers the
        unread count (``items`` empty)."""
        if ("ids" in body) == bool(body.get("all")):
            abort(422, errors={"ids": [Said("notify.ids_or_all")]})
        caller = identity()
        keys = recipients(caller)
        service = current_service()
        with service.uow() as uow:
            uow.store.notifications.mark_read(keys, body.get("ids"), datetime.now(UTC))
            unread = uow.store.notifications.unread_count(keys, reader=caller.user)
            uow.commit()
        return {"items": [], "unread": unread}
