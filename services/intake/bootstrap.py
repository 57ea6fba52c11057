"""Intake as a service: its blueprint, store, consumers and the policy it needs."""
from __future__ import annotations

from pathlib import Path

from services.intake import open311, photo_api  # noqa: F401  (photo_api's routes join intake's blueprint)
from services.intake.api import blp
from services.intake.consumers import CONSUMERS
from services.intake.limits import Limits
from services.intake.photos import PhotoFiles
from services.intake.store import ReportStore, unit_kind
from shared import bootstrap
from shared.clock import Clock
from shared.config import Settings
from shared.pages import page_blueprint
from shared.policy import load_policy

SPEC = bootstrap.ServiceSpec(
    name="intake", title="gridcase intake", blueprint=blp, store=ReportStore, consumers=CONSUMERS,
    units=unit_kind,
    dependencies=lambda settings, engine, clock: {
        "policy": load_policy(settings.policy_file),
        "photo_files": PhotoFiles(settings.photo_dir or settings.data_dir / "photos"),
        "limits": Limits.of(settings)},
    on_app=lambda service: _web(service),
    pages=(page_blueprint("app", Path(__file__).with_name("pages") / "app"),))


def _web(service: bootstrap.Service) -> None:
    """What intake's app has beyond its blueprint: Open311."""
    service.app.register_blueprint(open311.blp)


def build(settings: Settings, clock: Clock | None = None, **options) -> bootstrap.Service:
    return bootstrap.build(SPEC, settings, clock, **options)
