"""Admission control: how many downloads one process sends itself at once (SPEC §1 Capacity).

In ``stream`` and ``proxy`` a download holds a gunicorn thread until its last byte, and a
request that finds every thread busy waits, health checks included. So a process takes
at most ``limit`` downloads and refuses the next one at once with 503; the threads it
keeps free answer everything else. A slot is taken before the store is asked for bytes
and given back exactly once, when the body closes or when the answer fails before it.

A slot is also held while the download's ``start`` record waits for the disk, so under a
burst of small downloads every slot may be taken for a few milliseconds at a time: a
download waits up to SLOT_WAIT for one before it is refused. Only one request per
process waits so at a time; any other finding no slot is refused at once. Otherwise a
burst past capacity (every slot held by a slow client) queues its refusals SLOT_WAIT
each behind the few threads kept free, and the last 503 comes half a second late.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import TooManyDownloads
from ..metrics import DOWNLOADS_REFUSED_BUSY

Release = Callable[[], None]
# Long enough for a slot held by a small download (an fsync or two) to come free; short
# enough that a refusal is still "at once" and the threads kept free stay free.
SLOT_WAIT = 0.025


class Admission:
    """``limit`` download slots, shared by the threads of one process."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("a process must admit at least one download")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._waiting = threading.Lock()

    def admit(self) -> Release:
        """Take a slot, or raise TooManyDownloads; call the result to give it back."""
        if not (self._slots.acquire(blocking=False) or self._wait_for_a_slot()):
            DOWNLOADS_REFUSED_BUSY.inc()
            raise TooManyDownloads()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._slots.release()

        return release

    def _wait_for_a_slot(self) -> bool:
        """Wait up to SLOT_WAIT for a slot, unless another request already waits."""
        if not self._waiting.acquire(blocking=False):
            return False
        try:
            return self._slots.acquire(timeout=SLOT_WAIT)
        finally:
            self._waiting.release()
