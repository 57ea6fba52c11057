"""The active hierarchy and its point-in-polygon index, built once per version and shared by threads."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from services.dispatch import store
from services.dispatch.domain.areas import Hierarchy
from services.dispatch.domain.locate import Locator
from shared.consumer import Unavailable


class NoActiveAreas(Unavailable):
    """No hierarchy has been imported and activated yet."""


@dataclass(frozen=True)
class ActiveAreas:
    version: int
    hierarchy: Hierarchy
    locator: Locator


class AreaIndex:
    def __init__(self, engine: sa.Engine, *, refresh_seconds: float = 5.0):
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._active: ActiveAreas | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def current(self) -> ActiveAreas:
        """The active version, for readers; checks for a newer one at most every few seconds."""
        with self._lock:
            if self._active is None or time.monotonic() - self._checked > self.refresh_seconds:
                with self.engine.connect() as db:
                    self._load(store.active_version(db), db)
            if self._active is None:
                raise NoActiveAreas("no area hierarchy is active: import one with `gridcase areas import`")
            return self._active

    def version(self, version: int | None, db: sa.Connection) -> ActiveAreas:
        """Exactly ``version`` (the one the transaction ``db`` read as active), loaded through ``db`` if new
        (a second connection could wait on the lock that ``db`` holds)."""
        if version is None:
            raise NoActiveAreas("no area hierarchy is active: import one with `gridcase areas import`")
        with self._lock:
            self._load(version, db)
            return self._active

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0

    def _load(self, version: int | None, db: sa.Connection) -> None:
        if version is not None and (self._active is None or self._active.version != version):
            hierarchy = store.load_hierarchy(db, version)
            self._active = ActiveAreas(version, hierarchy, Locator(hierarchy))
        self._checked = time.monotonic()
