"""Group commit: records that threads of one process append at once go out in one batch.

A sink hands ``GroupCommit`` the function that writes a batch (under its lock, in one
transaction, with one flush); callers of ``append`` queue, and whichever thread finds no
batch being written takes every record queued so far and writes them together. Each
caller returns only once its own record is written, or with the error that stopped its
batch, so a record is never reported written when it is not.

A sink whose batch is in order before it is on disk (the file: written, lock released,
then ``fsync``) says so by calling ``written``: records that are not durable (``end``)
are then written while that batch waits for its flush, instead of waiting on its
account; durable ones gather meanwhile and go together in the next batch, with one
flush. A sink that never calls it (one transaction) simply writes one batch at a time.

A sink may bound how long a caller waits (``wait``): past it the caller gives up with
RecordNotWrittenError, whatever the batch writing is stuck on, and is refused (503). A
record its batch had taken may still be written after that: the trail then holds the
record of a download that was refused, never the reverse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: Writes a batch of records' fields, sealed in order; ``durable``: some caller waits for
#: the batch to be on disk; the callable: call it once the batch is in order, before the
#: flush. Returns the sealed records, or raises and writes none.
WriteBatch = Callable[[list[dict[str, Any]], bool, Callable[[], None]], list[dict[str, Any]]]


class RecordNotWrittenError(Exception):
    """The batch holding a record failed, whatever the reason: the record is not written."""


class GroupCommit:
    """Queues records and writes them in batches, one batch at a time per process."""

    def __init__(self, write_batch: WriteBatch, *, wait: float | None = None):
        self._write = write_batch
        self._wait = wait
        self._turn = threading.Condition()
        self._pending: list[_Pending] = []
        self._writing = False
        self._syncing = False

    def append(self, fields: dict[str, Any], *, durable: bool) -> dict[str, Any]:
        """The record sealed and written with the next batch; RecordNotWrittenError if not."""
        entry = _Pending(fields, durable)
        deadline = None if self._wait is None else time.monotonic() + self._wait
        with self._turn:
            self._pending.append(entry)
            while not entry.done and (entry.taken or self._writing or (durable and self._syncing)):
                self._turn.wait(None if deadline is None else deadline - time.monotonic())
                if deadline is not None and time.monotonic() >= deadline and not entry.done:
                    self._give_up(entry)
            if not entry.done:
                self._writing = True
                batch = [each for each in self._pending if not (each.durable and self._syncing)]
                self._pending = [each for each in self._pending if each not in batch]
                for each in batch:
                    each.taken = True
        if not entry.done:
            self._write_batch(batch)
        return entry.result()

    def _give_up(self, entry: _Pending) -> None:
        """The caller waited its bound: its record leaves the queue if no batch took it."""
        if not entry.taken:
            self._pending.remove(entry)
        raise RecordNotWrittenError(f"no batch wrote the record within {self._wait:g} s")

    def _write_batch(self, batch: list[_Pending]) -> None:
        """Write the batch; any failure leaves every entry of it without a record."""
        released = False
        durable = any(entry.durable for entry in batch)

        def let_next_batch_write() -> None:
            nonlocal released
            with self._turn:
                self._writing = False
                self._syncing = self._syncing or durable
                self._turn.notify_all()
            released = True

        try:
            fields = [entry.fields for entry in batch]
            records = self._write(fields, durable, let_next_batch_write)
            for entry, record in zip(batch, records, strict=True):
                entry.record = record
        except Exception as error:  # whatever it is, the batch fails closed
            for entry in batch:
                entry.error = error
        finally:
            with self._turn:
                for entry in batch:
                    entry.done = True
                if not released:
                    self._writing = False
                elif durable:
                    self._syncing = False
                self._turn.notify_all()


class _Pending:
    """One record waiting for its batch: filled in by whichever thread writes the batch."""

    def __init__(self, fields: dict[str, Any], durable: bool):
        self.fields = fields
        self.durable = durable
        self.taken = False
        self.done = False
        self.record: dict[str, Any] | None = None
        self.error: Exception | None = None

    def result(self) -> dict[str, Any]:
        """The record written; without one, whatever happened to the batch, an error."""
        if self.record is None:
            reason = str(self.error) if self.error is not None else "its batch did not finish"
            raise RecordNotWrittenError(reason) from self.error
        return self.record
