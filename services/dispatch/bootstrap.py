"""Wire dispatch: engine, area index, policy → Flask app, the ``case.reported`` consumer, the relay."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import sqlalchemy as sa

from services.dispatch import handlers
from services.dispatch.api import blp
from services.dispatch.areaindex import AreaIndex
from shared.clock import Clock, make_clock
from shared.config import Settings
from shared.consumer import each
from shared.db import make_engine
from shared.migrations import upgrade
from shared.policy import Policy, load_policy
from shared.runtime import Service, check_broker, check_database, consumer_factories, relay_factory
from shared.web import create_app


@dataclass(frozen=True)
class DispatchDeps:
    engine: sa.Engine
    clock: Clock
    policy: Policy
    areas: AreaIndex


def build(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> Service:
    engine = make_engine(settings.database_url("dispatch"))
    if migrate:
        upgrade(engine, "dispatch")
    deps = DispatchDeps(engine, clock or make_clock(settings), load_policy(settings.policy_file), AreaIndex(engine))
    app, api = create_app("dispatch", title="gridcase dispatch", secret=settings.secret,
                          max_body=256 * 1024 * 1024,
                          readiness={"database": check_database(engine),
                                     "broker": check_broker(settings.broker_url)})
    app.extensions["gridcase"] = deps
    api.register_blueprint(blp)
    consumers = {
        "dispatch.locate": partial(handlers.dispatch_cases, areas=deps.areas, policy=deps.policy, clock=deps.clock),
        "dispatch.closed": each(partial(handlers.close_case, clock=deps.clock)),
    }
    return Service("dispatch", settings, engine, app, workers={
        "relay": relay_factory("dispatch", settings, engine), **consumer_factories(consumers, engine, settings)})
