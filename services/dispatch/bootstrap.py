"""Dispatch as a service: its blueprint, store, consumers, the policy and the area index."""
from __future__ import annotations

from services.dispatch.api import blp
from services.dispatch.areaindex import AreaIndex
from services.dispatch.consumers import CONSUMERS
from services.dispatch.store import DispatchStore, unit_kind
from shared import bootstrap
from shared.clock import Clock
from shared.config import Settings
from shared.policy import load_policy

SPEC = bootstrap.ServiceSpec(
    name="dispatch", title="gridcase dispatch", blueprint=blp, store=DispatchStore, consumers=CONSUMERS,
    units=unit_kind,
    dependencies=lambda settings, engine, clock: {"policy": load_policy(settings.policy_file),
                                                  "areas": AreaIndex(engine)})


def build(settings: Settings, clock: Clock | None = None, **options) -> bootstrap.Service:
    return bootstrap.build(SPEC, settings, clock, **options)
