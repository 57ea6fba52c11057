"""Time limits and deadlines: the one place that computes a deadline and the one that decides "late".

A case carries a frozen ``TimePolicy`` (snapshotted from the category's policy when it opens, so later
policy edits never change a case in flight — after Grafana OnCall's escalation snapshot): the time
limit at each of the four levels, the time limit for the grid worker's on-site verification, and the
caps on extensions (延期). The store keeps it as ``TimePolicy.to_dict()``.

Limits are ``Limit(amount, unit)`` with ``unit`` one of ``seconds``, ``minutes``, ``hours``: elapsed
time on the UTC line. Working-time units (working hours, working days; issue 10) are to be added here,
in ``deadline`` and ``time_left``, and nowhere else.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.vocabulary import Level

#: Calendar units and their length in seconds.
UNIT_SECONDS: dict[str, int] = {"seconds": 1, "minutes": 60, "hours": 3600}
#: Used when a policy does not say (the shipped ``policy.toml`` does not yet; issue 10 adds them).
DEFAULT_VERIFICATION_HOURS = 24.0
DEFAULT_MAX_EXTENSIONS = 2
DEFAULT_MAX_EXTENSION_HOURS = 48.0


@dataclass(frozen=True)
class Limit:
    """An amount of time in a unit: ``Limit(4, "hours")``. ``amount`` is non-negative."""

    amount: float
    unit: str = "hours"

    def __post_init__(self) -> None:
        if self.unit not in UNIT_SECONDS:
            raise ValueError(f"unknown time unit {self.unit!r}; one of {', '.join(UNIT_SECONDS)}")
        if not self.amount >= 0:  # also refuses NaN
            raise ValueError(f"a time limit cannot be negative: {self.amount!r}")

    @property
    def seconds(self) -> float:
        """The length in seconds (calendar units only)."""
        return self.amount * UNIT_SECONDS[self.unit]

    def to_dict(self) -> dict:
        return {"amount": self.amount, "unit": self.unit}

    @classmethod
    def from_dict(cls, data: Mapping | float | int) -> Limit:
        """From ``{"amount": 4, "unit": "hours"}``; a bare number is hours (the pre-snapshot ``hours`` column)."""
        if isinstance(data, Mapping):
            return cls(float(data["amount"]), data.get("unit", "hours"))
        return cls(float(data), "hours")


@dataclass(frozen=True)
class TimePolicy:
    """The time rules frozen onto one case: ``levels[n - 1]`` is the limit at level ``n``."""

    levels: tuple[Limit, Limit, Limit, Limit]
    verification: Limit = Limit(DEFAULT_VERIFICATION_HOURS)
    max_extensions: int = DEFAULT_MAX_EXTENSIONS
    max_extension_total: Limit = Limit(DEFAULT_MAX_EXTENSION_HOURS)

    def __post_init__(self) -> None:
        if len(self.levels) != len(Level):
            raise ValueError(f"a time policy needs a limit for each of the {len(Level)} levels")
        if any(limit.amount <= 0 for limit in (*self.levels, self.verification)):
            raise ValueError("time limits must be positive")
        if self.max_extensions < 0:
            raise ValueError("max_extensions cannot be negative")

    def limit(self, level: Level | int) -> Limit:
        """The time allowed at ``level`` before it escalates (or, at level 4, is overdue)."""
        return self.levels[Level.of(level) - 1]

    @classmethod
    def from_hours(cls, hours: Mapping[int | str, float], **caps) -> TimePolicy:
        """From a category's ``hours`` (level number → hours, as ``shared.policy.Category.hours``);
        ``caps`` may set ``verification``, ``max_extensions``, ``max_extension_total``."""
        by_level = {int(k): float(v) for k, v in hours.items()}
        return cls(tuple(Limit(by_level[level]) for level in Level), **caps)

    def to_dict(self) -> dict:
        """A plain, JSON-ready dict; ``from_dict(p.to_dict()) == p``."""
        return {"levels": {str(int(level)): self.limit(level).to_dict() for level in Level},
                "verification": self.verification.to_dict(),
                "extensions": {"max_count": self.max_extensions, "max_total": self.max_extension_total.to_dict()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> TimePolicy:
        """Inverse of ``to_dict``. A mapping of level number → hours alone (the old ``hours`` column)
        is accepted too, with the default verification limit and caps."""
        if "levels" not in data:
            return cls.from_hours(data)
        levels = tuple(Limit.from_dict(data["levels"][str(int(level))]) for level in Level)
        caps = data.get("extensions", {})
        return cls(levels,
                   Limit.from_dict(data.get("verification", DEFAULT_VERIFICATION_HOURS)),
                   int(caps.get("max_count", DEFAULT_MAX_EXTENSIONS)),
                   Limit.from_dict(caps.get("max_total", DEFAULT_MAX_EXTENSION_HOURS)))


def deadline(start: datetime, limit: Limit) -> datetime:
    """The instant ``limit`` after ``start`` (aware UTC datetimes). The only deadline arithmetic:
    a level's deadline, the verification deadline, an extension added to a deadline, and a
    resumed case's remaining time all come from here."""
    return start + timedelta(seconds=limit.seconds)


def is_late(deadline: datetime | None, now: datetime) -> bool:
    """The only "late" rule: a deadline has passed from its very instant on (``now >= deadline``).
    No deadline (closed, suspended) is never late. The case list's ``overdue`` filter, the
    scheduler's claim and the domain use this same comparison."""
    return deadline is not None and now >= deadline


def time_left(deadline: datetime, at: datetime) -> Limit:
    """What remains of a running clock at ``at`` (never negative), so that
    ``deadline(later, time_left(d, at))`` restarts the clock with exactly that much (suspension)."""
    return Limit(max((deadline - at) / timedelta(microseconds=1), 0) / 1_000_000, "seconds")
