"""Wire escalation: engine, clock, policy → Flask app, the consumers, the scheduler, the relay."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import sqlalchemy as sa

from services.escalation import handlers
from services.escalation.api import blp
from services.escalation.scheduler import Scheduler
from shared.clock import Clock, make_clock
from shared.config import Settings
from shared.consumer import each
from shared.db import make_engine
from shared.migrations import upgrade
from shared.policy import Policy, load_policy
from shared.runtime import Service, check_broker, check_database, consumer_factories, relay_factory
from shared.web import create_app


@dataclass(frozen=True)
class EscalationDeps:
    engine: sa.Engine
    clock: Clock
    policy: Policy


def build(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> Service:
    engine = make_engine(settings.database_url("escalation"))
    if migrate:
        upgrade(engine, "escalation")
    deps = EscalationDeps(engine, clock or make_clock(settings), load_policy(settings.policy_file))
    app, api = create_app("escalation", title="gridcase escalation", secret=settings.secret,
                          readiness={"database": check_database(engine),
                                     "broker": check_broker(settings.broker_url)})
    app.extensions["gridcase"] = deps
    api.register_blueprint(blp)
    consumers = {
        "escalation.open": partial(handlers.open_cases, policy=deps.policy, clock=deps.clock),
        "escalation.areas": each(handlers.keep_areas),
        "escalation.transfer": each(partial(handlers.transfer_case, clock=deps.clock)),
    }
    return Service("escalation", settings, engine, app, workers={
        "relay": relay_factory("escalation", settings, engine), **consumer_factories(consumers, engine, settings),
        "scheduler": lambda: Scheduler(engine, deps.clock),
    })
