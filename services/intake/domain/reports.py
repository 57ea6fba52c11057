"""A grid worker's report of an incident, before any other service has seen it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used before with a different report."""


class UnknownCategory(ValueError):
    pass


@dataclass(frozen=True)
class NewReport:
    category: str
    description: str
    lon: float
    lat: float

    def fingerprint(self) -> str:
        """What makes two submissions "the same report" for an idempotent retry."""
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def report_number(seq: int, reported_at: datetime) -> str:
    """The number people read out on the phone: day of the report and a running sequence."""
    return f"{reported_at:%Y%m%d}-{seq:06d}"
