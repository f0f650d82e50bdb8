"""Admission control: how many downloads a host, one of its processes and one caller send at
once (docs/api.md §1, Capacity).

In ``stream`` and ``proxy`` a download holds a gunicorn thread until its last byte, and a
request that finds every thread busy waits, health checks included. So a process takes
at most as many downloads as it has threads but a few. The host takes at most its
``host_limit`` and one caller at most its ``subject_limit``, counted across the host's
processes (http/slots.py), and ``host_limit`` is at most what one process may take
(settings.py): gunicorn's workers accept connections unevenly, so a host refuses only
when the host is full, whichever worker accepted, and one caller's slow downloads cannot
take every slot from the others. A download past its caller's share is refused with 429
(TooManyDownloadsForCaller), past the host's slots with 503 (TooManyDownloads); the
threads kept free answer everything else. A slot is taken before the store is asked
for bytes and given back exactly once, when the body closes or when the answer fails
before it.

A slot is also held while the download's ``start`` record waits for the disk, so under a
burst of small downloads every slot may be taken for a few milliseconds at a time: a
download then waits for one, up to SLOT_WAIT, for as long as slots keep coming free (one
did in this process within CHURN_WINDOW). Every thread of a worker may be in the app at
once (threads are the host's slots plus a few), so this wait is the queue a burst of
small downloads waits in. When every slot is held by a slow client, none comes free: the
download is refused at once, instead of queueing its refusal behind the others'.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ..errors import TooManyDownloads, TooManyDownloadsForCaller
from ..metrics import DOWNLOADS_REFUSED_BUSY, DOWNLOADS_REFUSED_CALLER
from .slots import HostSlots, Refusal

Release = Callable[[], None]
# Long enough for a burst of small downloads (each holding its slot for an fsync or two)
# to be served in turn on a busy host; short enough that no client waits long for a 503.
SLOT_WAIT = 0.25
# Under a burst of short downloads a slot of this process comes free every few tens of
# milliseconds even on a loaded host (a 50 ms window gave up on half of a 64-connection
# burst); slow clients hold theirs for minutes, and one download that ended a while ago
# says nothing of now.
CHURN_WINDOW = 0.25
# A slot this process gives back wakes its waiters at once; one another process gives
# back is seen within this. Each look is up to a share's and a host's fcntl calls, so
# looking more often costs a burst's waiters more CPU than it wins them slots.
POLL = 0.02


class Admission:
    """The host's download ``slots``, as one process takes and gives them back; ``clock``
    (seconds, monotonic) times the wait, so a test can hold it."""

    def __init__(self, slots: HostSlots, *, clock: Callable[[], float] = time.monotonic):
        self.slots = slots
        self._clock = clock
        self._freed_at = -math.inf
        self._freed = threading.Condition()

    def admit(self, subject: str) -> Release:
        """Take a slot for ``subject``, or raise TooManyDownloads (503) or
        TooManyDownloadsForCaller (429); call the result to give it back."""
        deadline = self._clock() + SLOT_WAIT
        taken = self.slots.take(subject)
        while isinstance(taken, Refusal):
            now = self._clock()
            if now >= deadline or now - self._freed_at > CHURN_WINDOW:
                if taken is Refusal.SUBJECT:
                    DOWNLOADS_REFUSED_CALLER.inc()
                    raise TooManyDownloadsForCaller()
                DOWNLOADS_REFUSED_BUSY.inc()
                raise TooManyDownloads()
            with self._freed:
                self._freed.wait(POLL)
            taken = self.slots.take(subject)
        return self._release_of(taken)

    def _release_of(self, taken: tuple[int, int]) -> Release:
        """Gives back the slots taken, once however often it is called."""
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.give_back(taken)
                with self._freed:
                    self._freed_at = self._clock()
                    self._freed.notify()

        return release
