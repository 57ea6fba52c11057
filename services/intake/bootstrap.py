"""Intake as a service: its blueprint, store, consumers and the policy it needs."""
from __future__ import annotations

from services.intake import photo_api  # noqa: F401  (its routes join intake's blueprint)
from services.intake.api import blp
from services.intake.consumers import CONSUMERS
from services.intake.limits import ReportLimits
from services.intake.photos import PhotoFiles
from services.intake.store import ReportStore
from shared import bootstrap
from shared.clock import Clock
from shared.config import Settings
from shared.policy import load_policy

SPEC = bootstrap.ServiceSpec(
    name="intake", title="gridcase intake", blueprint=blp, store=ReportStore, consumers=CONSUMERS,
    dependencies=lambda settings, engine, clock: {
        "policy": load_policy(settings.policy_file),
        "photo_files": PhotoFiles(settings.photo_dir or settings.data_dir / "photos")},
    on_app=lambda service: ReportLimits.install(service.app, service.settings))


def build(settings: Settings, clock: Clock | None = None, **options) -> bootstrap.Service:
    return bootstrap.build(SPEC, settings, clock, **options)
