"""Intake as a service: its blueprint, store, consumers and the policy it needs."""
from __future__ import annotations

from pathlib import Path

from services.intake.api import blp
from services.intake.consumers import CONSUMERS
from services.intake.store import ReportStore
from shared import bootstrap
from shared.clock import Clock
from shared.config import Settings
from shared.pages import page_blueprint
from shared.policy import load_policy

SPEC = bootstrap.ServiceSpec(
    name="intake", title="gridcase intake", blueprint=blp, store=ReportStore, consumers=CONSUMERS,
    dependencies=lambda settings, engine, clock: {"policy": load_policy(settings.policy_file)},
    pages=(page_blueprint("app", Path(__file__).with_name("pages") / "app"),))


def build(settings: Settings, clock: Clock | None = None, **options) -> bootstrap.Service:
    return bootstrap.build(SPEC, settings, clock, **options)
