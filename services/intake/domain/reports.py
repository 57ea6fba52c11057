"""A grid worker's report of an incident, and what intake knows of its case afterwards."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from shared.vocabulary import Level, Status


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used before with a different report."""


class UnknownCategory(ValueError):
    pass


class NotItsGridWorker(Exception):
    """The caller sees the case but is not the grid worker of its grid (only they verify on site)."""


class NotAwaitingVerification(Exception):
    """The case is not waiting for a verification (not resolved, or already verified)."""


@dataclass(frozen=True)
class NewReport:
    """What a reporter sends (the command); ``lon``/``lat`` in degrees, WGS84."""
    category: str
    description: str
    lon: float
    lat: float

    def fingerprint(self) -> str:
        """What makes two submissions "the same report" for an idempotent retry."""
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Report:
    """A stored report. ``status``, ``level`` and ``owner_area_id`` follow the case as the other
    services move it (intake hears of it through their events)."""
    id: str
    seq: int
    reporter: str
    idempotency_key: str | None
    fingerprint: str
    category: str
    severity: str
    description: str
    lon: float
    lat: float
    status: Status
    reported_at: datetime
    updated_at: datetime
    level: Level | None = None
    owner_area_id: str | None = None
    #: the case's owner at each area level below headquarters (``grid``, ``station``, ``subcenter``)
    owners: dict[str, str | None] = field(default_factory=dict)

    @property
    def number(self) -> str:
        return report_number(self.seq, self.reported_at)


def report_number(seq: int, reported_at: datetime) -> str:
    """The number people read out on the phone: day of the report and a running sequence."""
    return f"{reported_at:%Y%m%d}-{seq:06d}"
