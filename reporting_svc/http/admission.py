"""Admission control: how many downloads one process sends itself at once (SPEC §1 Capacity).

In ``stream`` and ``proxy`` a download holds a gunicorn thread until its last byte, and a
request that finds every thread busy waits, health checks included. So a process takes
at most ``limit`` downloads and refuses the next one at once with 503; the threads it
keeps free answer everything else. A slot is taken before the store is asked for bytes
and given back exactly once, when the body closes or when the answer fails before it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import TooManyDownloads
from ..metrics import DOWNLOADS_REFUSED_BUSY

Release = Callable[[], None]


class Admission:
    """``limit`` download slots, shared by the threads of one process."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("a process must admit at least one download")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def admit(self) -> Release:
        """Take a slot, or raise TooManyDownloads; call the result to give it back."""
        if not self._slots.acquire(blocking=False):
            DOWNLOADS_REFUSED_BUSY.inc()
            raise TooManyDownloads()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._slots.release()

        return release
