"""Log lines and trace context.

Every process writes structlog lines to stderr: JSON lines (``GRIDCASE_LOG_FORMAT=json``, the default
when stderr is not a terminal) or console text (``console``, the default on a terminal). Standard-library loggers (gunicorn, alembic, ours) go through
the same renderer. Context bound with ``bound(...)`` — a request's trace id, a message's id, type and
case id — appears on every line written inside it.

A trace follows a case through the services as W3C trace context (``traceparent``,
``00-<32 hex trace id>-<16 hex span id>-01``): an HTTP request takes the caller's header or starts a
trace; every message a unit of work writes carries the trace of the request or message that caused
it; a consumer continues the trace of the message it handles. Grep one trace id across the three
services' logs to follow one report from intake to escalation.
"""
from __future__ import annotations

import logging
import re
import secrets
import sys
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_current: ContextVar[str | None] = ContextVar("traceparent", default=None)


def configure(level: str = "INFO", fmt: str | None = None) -> None:
    """Set up structlog and the standard library's root logger once per process. ``fmt``: ``json`` or
    ``console``; None picks console text on a terminal and JSON lines anywhere else."""
    fmt = fmt or ("console" if sys.stderr.isatty() else "json")
    shared = [structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
              structlog.processors.TimeStamper(fmt="iso", utc=True)]
    renderer = (structlog.processors.JSONRenderer(ensure_ascii=False) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(), wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("werkzeug", "pika", "alembic", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get(name: str):
    return structlog.get_logger(name)


def trace_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None


def new_traceparent(trace: str | None = None) -> str:
    """A new span of ``trace`` (a new trace when None)."""
    return f"00-{trace or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def current_traceparent() -> str | None:
    return _current.get()


def enter(traceparent: str | None, **context):
    """Start a request's span (``leave`` ends it): for frameworks with separate before/after hooks."""
    span = new_traceparent(trace_id(traceparent))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(trace_id=trace_id(span), **context)
    return _current.set(span)


def leave(token) -> None:
    _current.reset(token)
    structlog.contextvars.clear_contextvars()


@contextmanager
def traced(traceparent: str | None, **context):
    """Continue ``traceparent`` (or start a trace) with ``context`` on every log line inside."""
    span = new_traceparent(trace_id(traceparent))
    token = _current.set(span)
    with structlog.contextvars.bound_contextvars(trace_id=trace_id(span), **context):
        try:
            yield span
        finally:
            _current.reset(token)
