"""A grid worker's report of an incident, and what intake knows of its case afterwards."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

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

    def number_in(self, time_zone: str) -> str:
        """The report's number, dated in the city's time zone (``Settings.time_zone``)."""
        return report_number(self.seq, self.reported_at, time_zone)


def report_number(seq: int, reported_at: datetime, time_zone: str) -> str:
    """The number people read out on the phone: the report's date in the city's time zone
    (``time_zone``, IANA; issue 10: a report at 02:30 on 1 December in UTC+8 is dated 1 December)
    and a running sequence: ``20261201-000042``. ``reported_at`` is an aware UTC instant."""
    return f"{reported_at.astimezone(ZoneInfo(time_zone)):%Y%m%d}-{seq:06d}"
