"""Admission control: how many downloads one process sends itself at once (SPEC §1 Capacity).

In ``stream`` and ``proxy`` a download holds a gunicorn thread until its last byte, and a
request that finds every thread busy waits, health checks included. So a process takes
at most ``limit`` downloads and refuses the next one at once with 503; the threads it
keeps free answer everything else. A slot is taken before the store is asked for bytes
and given back exactly once, when the body closes or when the answer fails before it.

A slot is also held while the download's ``start`` record waits for the disk, so under a
burst of small downloads every slot may be taken for a few milliseconds at a time: a
download waits up to SLOT_WAIT for one before it is refused, but only while slots are
coming free (one did within CHURN_WINDOW). When every slot is held by a slow client,
none has for a while: the download is refused at once. Waiting then would only queue
the refusals of a burst, SLOT_WAIT each, behind the few threads kept free, and the last
503 would come half a second late.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ..errors import TooManyDownloads
from ..metrics import DOWNLOADS_REFUSED_BUSY

Release = Callable[[], None]
# Long enough for a slot held by a small download (an fsync or two) to come free; short
# enough that a refusal is still "at once" and the threads kept free stay free.
SLOT_WAIT = 0.025
# Under a burst of short downloads a slot comes free every few milliseconds; slow clients
# hold theirs for minutes, and one download that ended a while ago says nothing of now.
CHURN_WINDOW = 2 * SLOT_WAIT


class Admission:
    """``limit`` download slots, shared by the threads of one process."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("a process must admit at least one download")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._freed_at = -math.inf

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
                self._freed_at = time.monotonic()
                self._slots.release()

        return release

    def _wait_for_a_slot(self) -> bool:
        """Wait up to SLOT_WAIT for a slot, if one came free within CHURN_WINDOW."""
        if time.monotonic() - self._freed_at > CHURN_WINDOW:
            return False
        return self._slots.acquire(timeout=SLOT_WAIT)
