"""Download slots counted host-wide: one byte-range lock per slot in a file every process opens.

gunicorn's workers share no memory, and each accepts whatever connections it wins, so a
count kept per worker refuses while another worker has room. Here a slot is a lock on
one byte of a file under the var dir (local to the host): the host's slots are bytes
``0..host_limit-1`` and each caller has ``subject_limit`` bytes of its own, at an offset
drawn from a hash of its subject, far above them. A download holds one byte of each.

The locks are Linux's open file description locks (``F_OFD_SETLK``): the kernel frees
them when the last descriptor closes, so a worker that is SIGKILLed gives its slots back
at once and there is no count to repair. Taking and giving back a byte is one ``fcntl``
each while one is free. Locks on one descriptor never exclude each other, so the
threads of a process, which share the descriptor, keep among themselves which bytes they
hold; the descriptor is opened again in a child after a fork, where an inherited one
would be shared with the parent.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import struct
import threading
from collections.abc import Iterable
from enum import Enum
from functools import lru_cache
from pathlib import Path

# struct flock as Linux lays it out: type, whence, start, length, pid (0 for OFD locks),
# padded to the alignment of its 64-bit fields ("0q").
_FLOCK = struct.Struct("hhqqi0q")
# Callers' bytes start here; a 48-bit hash times the share stays far below 2**63.
_SUBJECTS_AT = 1 << 32
_HASH_BYTES = 6


class Refusal(Enum):
    """Why no slot was taken: the host is full, or the caller holds its whole share."""

    HOST = "host"
    SUBJECT = "subject"


class HostSlots:
    """``host_limit`` slots per host and ``subject_limit`` per caller, in the file ``path``."""

    def __init__(self, path: Path, host_limit: int, subject_limit: int):
        if not 1 <= subject_limit <= host_limit:
            raise ValueError("a caller's share must be between one slot and the host's")
        self.path = path
        self.host_limit = host_limit
        self.subject_limit = subject_limit
        self._lock = threading.Lock()
        self._held: set[int] = set()
        self._fd = -1
        self._pid = 0
        self._next = 0

    def take(self, subject: str) -> tuple[int, int] | Refusal:
        """A caller's byte and a host byte, both now locked, or why not."""
        base = _SUBJECTS_AT + _hash(subject) * self.subject_limit
        with self._lock:
            fd = self._descriptor()
            own = self._take_one(fd, range(base, base + self.subject_limit))
            if own is None:
                return Refusal.SUBJECT
            start = self._next
            host = self._take_one(fd, itertools.chain(range(start, self.host_limit), range(start)))
            if host is None:
                self._unlock(fd, own)
                return Refusal.HOST
            return own, host

    def give_back(self, held: tuple[int, int]) -> None:
        """Unlock both bytes of ``take``; the host's byte is tried first next time."""
        with self._lock:
            for offset in held:
                self._unlock(self._fd, offset)
            self._next = held[1]

    def _take_one(self, fd: int, offsets: Iterable[int]) -> int | None:
        for offset in offsets:
            if offset in self._held:
                continue
            try:
                fcntl.fcntl(
                    fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
                )
            except (BlockingIOError, PermissionError):  # another process holds it
                continue
            self._held.add(offset)
            return offset
        return None

    def _unlock(self, fd: int, offset: int) -> None:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, offset, 1, 0))
        self._held.discard(offset)

    def _descriptor(self) -> int:
        """This process's own descriptor of the file, opened on first use."""
        pid = os.getpid()
        if self._pid != pid:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = pid
            self._held.clear()
            self._next = pid % self.host_limit  # workers start apart, so rarely collide
        return self._fd


@lru_cache(maxsize=4096)
def _hash(subject: str) -> int:
    """Where a caller's bytes are: the same number in every process, for any subject."""
    digest = hashlib.blake2b(subject.encode(), digest_size=_HASH_BYTES).digest()
    return int.from_bytes(digest, "big")
