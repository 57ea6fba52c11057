"""Escalation as a service: its blueprint, store, consumers, the policy and the deadline scheduler."""
from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from services.escalation import board_api, warnings_api  # noqa: F401 (their routes join the blueprint)
from services.escalation.api import blp
from services.escalation.calendars import Calendars
from services.escalation.consumers import CONSUMERS
from services.escalation.notify import api as _notify_api  # noqa: F401 (its routes join the blueprint)
from services.escalation.notify.worker import Notifier
from services.escalation.scheduler import Scheduler, timer_health
from services.escalation.store import CaseStore, unit_kind, use_audit_key
from shared import bootstrap
from shared.clock import Clock
from shared.config import Settings
from shared.pages import page_blueprint
from shared.policy import load_policy

PAGES = Path(__file__).with_name("pages")
SPEC = bootstrap.ServiceSpec(
    name="escalation", title="gridcase escalation", blueprint=blp, store=CaseStore, consumers=CONSUMERS,
    units=unit_kind,
    dependencies=lambda settings, engine, clock: _dependencies(settings, clock, engine),
    workers=lambda service: {"scheduler": lambda: Scheduler(service), "notify": lambda: Notifier(service)},
    details=lambda service: _details(service),
    pages=(page_blueprint("board", PAGES / "board"), page_blueprint("desk", PAGES / "desk"),
           page_blueprint("wall", PAGES / "wall")))


def _dependencies(settings: Settings, clock: Clock, engine=None) -> dict:
    """The policy, the city's working calendars and time zone, for handlers that name them. The
    calendar's coverage is logged as a warning when its official files end within 30 days. The audit
    rows written through ``engine`` are signed with the audit key (``GRIDCASE_AUDIT_KEY``)."""
    if settings.audit_key and engine is not None:
        use_audit_key(engine, settings.audit_key.encode())
    policy = load_policy(settings.policy_file)
    calendars = Calendars.of(settings, policy)
    calendars.warn(_today(clock, settings))
    return {"policy": policy, "calendars": calendars, "time_zone": settings.time_zone,
            "calendars_for": lambda other: Calendars.of(settings, other)}


def _today(clock: Clock, settings: Settings):
    return clock.now().astimezone(ZoneInfo(settings.time_zone)).date()


def _details(service: bootstrap.Service) -> dict:
    """``/readyz``'s ``detail``: the timers, and the calendar's coverage (``Coverage.report``)."""
    return {**timer_health(service),
            "calendar": service.calendars.coverage.report(_today(service.clock, service.settings))}


def build(settings: Settings, clock: Clock | None = None, **options) -> bootstrap.Service:
    return bootstrap.build(SPEC, settings, clock, **options)
