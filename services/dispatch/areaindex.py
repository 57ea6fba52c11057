"""The active hierarchy and its point-in-polygon index, built once per version and shared by threads."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from services.dispatch.domain.areas import Hierarchy
from services.dispatch.domain.locate import Locator
from services.dispatch.store import DispatchStore
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
                with self.engine.connect() as connection:
                    store = DispatchStore(lambda: connection, self.engine)
                    self._load(store.active_version(), store)
            if self._active is None:
                raise NoActiveAreas("no area hierarchy is active: import one with `gridcase areas import`")
            return self._active

    def version(self, store: DispatchStore, *, share_lock: bool = True) -> ActiveAreas:
        """The version active in ``store``'s transaction (loaded through it if new: a second connection
        could wait on the lock that transaction holds)."""
        version = store.active_version(share_lock=share_lock)
        if version is None:
            raise NoActiveAreas("no area hierarchy is active: import one with `gridcase areas import`")
        with self._lock:
            self._load(version, store)
            return self._active

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0

    def _load(self, version: int | None, store: DispatchStore) -> None:
        if version is not None and (self._active is None or self._active.version != version):
            hierarchy = store.load_hierarchy(version)
            self._active = ActiveAreas(version, hierarchy, Locator(hierarchy))
        self._checked = time.monotonic()
