"""The injectable clock. Domain code never calls ``datetime.now()``.

``ScaledClock`` runs ``scale`` times faster than real time from an anchor, so a demo can watch a
four-hour deadline pass in seconds. Processes that must agree on service time (production mode
with a time scale) share ``GRIDCASE_CLOCK_ANCHOR``.
"""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def to_real_seconds(self, service_seconds: float) -> float: ...


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def isoformat(dt: datetime) -> str:
    return utc(dt).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


class ScaledClock:
    def __init__(self, scale: float = 1.0, anchor: datetime | None = None, _real=time.time):
        self.scale = float(scale)
        self._real = _real
        self._anchor_real = anchor.timestamp() if anchor else _real()

    def now(self) -> datetime:
        real = self._real()
        service = self._anchor_real + (real - self._anchor_real) * self.scale
        return datetime.fromtimestamp(service, UTC)

    def to_real_seconds(self, service_seconds: float) -> float:
        return service_seconds / self.scale


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None):
        self._now = utc(start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
        self._lock = threading.Lock()
        self.scale = 1.0

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        with self._lock:
            self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
            return self._now

    def to_real_seconds(self, service_seconds: float) -> float:
        return 0.0


def make_clock(settings) -> ScaledClock:
    anchor = parse_time(settings.clock_anchor) if settings.clock_anchor else None
    return ScaledClock(settings.time_scale, anchor)
