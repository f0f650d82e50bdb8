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
        self.loading: dict[Hashable, _Load[V]] = {}

    def get(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        """The value remembered under ``key``, else what ``load`` finds (remembered if any).

        While another thread loads the same key, wait for its answer; if its load failed,
        load again, so each caller sees its own error.
        """
        if self.cache is None:
            return load()
        with self.lock:
            value = self.cache.get(key)
            if value is not None:
                return value
            shared = self.loading.get(key)
            leads = shared is None
            if shared is None:
                shared = self.loading[key] = _Load()
        if not leads:
            shared.done.wait()
            return shared.value if shared.answered else load()
        try:
            shared.value = value = load()
            shared.answered = True
        finally:
            with self.lock:
                if shared.answered and value is not None:
                    self.cache[key] = value
                del self.loading[key]
            shared.done.set()
        return value

    def forget(self, key: Hashable) -> None:
        """Drop what is remembered under ``key``: this process changed it."""
        if self.cache is not None:
            with self.lock:
                self.cache.pop(key, None)


class _Load(Generic[V]):
    """One load in progress: its waiters, and once it answered, what it found (None: nothing)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answered = False
        self.value: V | None = None
