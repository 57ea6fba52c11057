"""Wire intake: settings → engine, clock, policy → Flask app and background workers."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import sqlalchemy as sa

from services.intake import handlers, store
from services.intake.api import blp
from shared.clock import Clock, make_clock
from shared.config import Settings
from shared.consumer import each
from shared.db import make_engine
from shared.migrations import upgrade
from shared.policy import Policy, load_policy
from shared.runtime import Service, check_broker, check_database, consumer_factories, relay_factory
from shared.web import create_app


@dataclass(frozen=True)
class IntakeDeps:
    engine: sa.Engine
    clock: Clock
    policy: Policy
    writer: store.ReportWriter


def build(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> Service:
    engine = make_engine(settings.database_url("intake"))
    if migrate:
        upgrade(engine, "intake")
    deps = IntakeDeps(engine, clock or make_clock(settings), load_policy(settings.policy_file),
                      store.ReportWriter(engine))
    app, api = create_app("intake", title="gridcase intake", secret=settings.secret, max_body=12 * 1024 * 1024,
                          readiness={"database": check_database(engine),
                                     "broker": check_broker(settings.broker_url)})
    app.extensions["gridcase"] = deps
    api.register_blueprint(blp)
    consumers = {"intake.status": each(partial(handlers.follow_case, clock=deps.clock))}
    return Service("intake", settings, engine, app, workers={
        "relay": relay_factory("intake", settings, engine), **consumer_factories(consumers, engine, settings)})
