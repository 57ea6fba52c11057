"""One bootstrap for every service: settings → engine, clock, dependencies → app, unit of work, workers.

A service declares what it is in a ``ServiceSpec`` (its ``bootstrap.py``): its name, blueprint, store,
consumers (``consumers.py``), extra dependencies and extra workers. ``build`` wires it the same way for
``gridcase up``, ``gridcase serve``, ``gridcase worker`` and the command line, and refuses to start when
a subscription of the service (``shared.bus.SUBSCRIPTIONS``) has no consumer or a consumer no
subscription — a forgotten handler must not fail silently while its queue fills.

Handlers are plain functions ``handler(command_or_message, uow, **dependencies)``; ``Service.run``
and the consumers pass the dependencies a handler names (cosmicpython's bootstrap injects the same way).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from shared import bus, faults
from shared.clock import Clock, make_clock
from shared.config import Settings
from shared.consumer import Consumer, ConsumerWorker
from shared.db import make_engine
from shared.migrations import upgrade
from shared.relay import Relay, publisher_factory
from shared.revocations import Revocations
from shared.runtime import check_broker, check_database
from shared.uow import Store, UnitOfWork
from shared.web import Blueprint, create_app


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    blueprint: Blueprint
    store: type[Store]
    consumers: tuple[Consumer, ...] = ()
    #: extra dependencies by name, e.g. ``{"policy": ...}``, from (settings, engine, clock)
    dependencies: Callable[[Settings, sa.Engine, Clock], dict] = lambda settings, engine, clock: {}
    #: extra background workers by name (the escalation scheduler), from the built service
    workers: Callable[[Service], dict[str, Callable[[], object]]] = lambda service: {}
    #: what ``/readyz`` reports beyond the checks, and refreshes before ``/metrics`` (escalation's timers)
    details: Callable[[Service], dict] | None = None
    #: what the service adds to its built Flask app (intake's per-person rate limits)
    on_app: Callable[[Service], None] | None = None
    #: the web pages the service serves (``shared.pages.page_blueprint``), outside its OpenAPI
    pages: tuple = ()
    #: (engine, subject) → the kind of the city's unit whose id ``subject`` is, or None, from the service's
    #: own database: a token with such a ``sub`` is refused (``shared.auth``, "Unit subjects")
    units: Callable[[sa.Engine, str], str | None] | None = None


@dataclass
class Service:
    """A built service: what its API, consumers, scheduler and the command line use."""
    spec: ServiceSpec
    settings: Settings
    engine: sa.Engine
    clock: Clock
    dependencies: dict
    app: Flask | None = None
    #: name → factory of an object with ``run()`` (blocking) and ``stop()``
    workers: dict[str, Callable[[], object]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def __getattr__(self, name: str):
        """A dependency by name (``service.policy``, ``service.areas``)."""
        try:
            return self.__dict__["dependencies"][name]
        except KeyError:
            raise AttributeError(name) from None

    def uow(self) -> UnitOfWork:
        """A new unit of work (one per request or worker thread: a unit of work is not shared)."""
        return UnitOfWork(self.engine, self.spec.store, producer=self.name, clock=self.clock)

    def run(self, handler: Callable, *args):
        """Run a use case with a fresh unit of work and the dependencies it names."""
        bound = self.__dict__.setdefault("_bound", {})
        if handler not in bound:  # reading a signature costs more than many a use case
            bound[handler] = inject(handler, self.dependencies)
        return bound[handler](*args, self.uow())


def inject(handler: Callable, dependencies: dict) -> Callable:
    """``handler`` with the keyword dependencies it declares (by parameter name) bound."""
    names = inspect.signature(handler).parameters
    return functools.partial(handler, **{k: v for k, v in dependencies.items() if k in names})


def build(spec: ServiceSpec, settings: Settings, clock: Clock | None = None, *, migrate: bool = True,
          web: bool = True) -> Service:
    faults.arm(settings.crash_at)
    _check_subscriptions(spec)
    engine = make_engine(settings.database_url(spec.name), pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow)
    if migrate:
        upgrade(engine, spec.name)
    clock = clock or make_clock(settings)
    dependencies = {"clock": clock, "settings": settings}
    dependencies.update(spec.dependencies(settings, engine, clock))
    service = Service(spec, settings, engine, clock, dependencies)
    if web:
        service.app = create_app(spec.name, title=spec.title, blueprint=spec.blueprint, service_object=service,
                                 secret=settings.secret, jwks=settings.jwks_url, jwt_audience=settings.jwt_audience,
                                 jwt_issuer=settings.jwt_issuer, revoked=Revocations(engine).revoked,
                                 units=functools.partial(spec.units, engine) if spec.units else None,
                                 details=(lambda: spec.details(service)) if spec.details else None,
                                 readiness={"database": check_database(engine),
                                            "broker": check_broker(settings.broker_url)})
        for page in spec.pages:
            service.app.register_blueprint(page)
        if spec.on_app:
            spec.on_app(service)
    # The in-memory bus forgets everything on a crash: the embedded relay replays the last hour.
    window = timedelta(hours=1) if settings.embedded else None
    # Embedded, every writer shares the process and its commits wake the relay: the poll only catches
    # another process's rows (a CLI command), and each wake of an idle process costs CPU (test_idle.py).
    idle_poll = 10.0 if settings.embedded else 0.25
    service.workers["relay"] = lambda: Relay(engine, spec.name, publisher_factory(settings.broker_url,
                                                                                    settings.delivery_limit),
                                             replay_window=window, idle_poll=idle_poll)
    for consumer in spec.consumers:
        service.workers[consumer.subscription] = _consumer_factory(service, consumer)
    service.workers.update(spec.workers(service))
    return service


def _consumer_factory(service: Service, consumer: Consumer) -> Callable[[], ConsumerWorker]:
    handle = consumer.bind(inject(consumer.handler, service.dependencies))
    return lambda: ConsumerWorker(bus.SUBSCRIPTIONS[consumer.subscription], handle, service.uow(),
                                  service.settings.broker_url, delivery_limit=service.settings.delivery_limit)


def _check_subscriptions(spec: ServiceSpec) -> None:
    subscribed = {name for name, s in bus.SUBSCRIPTIONS.items() if s.service == spec.name}
    consumed = {c.subscription for c in spec.consumers}
    if subscribed != consumed:
        raise RuntimeError(
            f"service {spec.name}: subscriptions without a consumer {sorted(subscribed - consumed)}, "
            f"consumers without a subscription {sorted(consumed - subscribed)} (shared/bus.py SUBSCRIPTIONS "
            f"and services/{spec.name}/consumers.py must agree)")
