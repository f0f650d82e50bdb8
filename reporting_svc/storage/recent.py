"""What a store read in the last few seconds, remembered per process: bounded, soon forgotten.

Records and files are written once, so what was read a moment ago still holds, and a
repeat download need not ask a remote store again. Only what was found is remembered: a
job published a moment after a miss is served at once. Entries expire within seconds, so
a later change of state (a withdrawal, a deleted file) reaches every process in time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

MAX_ENTRIES = 4096

V = TypeVar("V")


class Recent(Generic[V]):
    """Values found in the last ``seconds`` (0: none), at most ``size`` of them; thread-safe."""

    def __init__(
        self,
        seconds: float,
        *,
        size: int = MAX_ENTRIES,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.cache: TTLCache[Hashable, V] | None = (
            TTLCache(maxsize=size, ttl=seconds, timer=timer) if seconds > 0 else None
        )
        self.lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        """The value remembered under ``key``, else what ``load`` finds (remembered if any)."""
        if self.cache is None:
            return load()
        with self.lock:
            value = self.cache.get(key)
        if value is not None:
            return value
        value = load()
        if value is not None:
            with self.lock:
                self.cache[key] = value
        return value
