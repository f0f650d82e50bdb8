"""Where audit records go: a JSON Lines file shared by every process, and standard output."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from .chain import GENESIS, line_of, seal, verify_from

MIN_FREE_BYTES = 1024 * 1024
# The head's JSON is padded with spaces to this width, so each rewrite covers the last.
HEAD_BYTES = 256
log = logging.getLogger(__name__)


class FileSink:
    """Appends sealed records to one file; any number of processes and threads may share it.

    An exclusive ``flock`` on the file serialises appenders, so records never interleave
    and the chain never forks. Beside the file, ``<file>.head`` names the number of
    records, the last hash and the file's size: it is where the next ``prev`` comes from,
    and it lets ``audit verify`` notice records cut from the end, which no chain can show
    by itself. A file that does not end where its head says (a write cut short by a full
    disk, a crash between the two, an edit) is refused for appending until an operator
    has looked: appending would fork the chain or glue a record onto half a line.

    Group commit: records that threads of one process append while another thread is
    writing go out together in the next batch, under one lock with one write and one head
    update. The fsync comes after the lock is released, so other processes append while
    this one waits for the disk, and the kernel folds their flushes into one journal
    commit. Each caller of a durable record returns only once that record is on disk.

    The head is rewritten in place, padded to a fixed width, rather than replaced by a
    rename: ext4 flushes a file renamed over another at once, which cost more than the
    rest of an append together. A head torn by a crash reads as damaged or as disagreeing
    with the file, and the sink then refuses to append, as for any other mismatch.
    """

    def __init__(self, path: Path, *, fsync: bool = True):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.fsync = fsync
        self._turn = threading.Condition()
        self._pending: list[_Pending] = []
        self._writing = False

    def append(self, fields: dict[str, Any], *, durable: bool = True) -> dict[str, Any]:
        """Seal and write one record; OSError (disk full, permission denied) and ValueError
        (a trail that does not end where its head says) propagate to the caller.

        A record that is not ``durable`` is written like any other but waits for no
        ``fsync`` of its own: the next durable batch's ``fsync`` (which flushes the whole
        file) or the kernel's writeback puts it on disk.
        """
        entry = _Pending(fields, durable)
        with self._turn:
            self._pending.append(entry)
            while self._writing and not entry.done:
                self._turn.wait()
            if not entry.done:
                self._writing = True
                batch, self._pending = self._pending, []
        if not entry.done:
            self._write_batch(batch)
        return entry.result()

    def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            durable = any(entry.durable for entry in batch)
            records = self._append_all([entry.fields for entry in batch], durable=durable)
            for entry, record in zip(batch, records, strict=True):
                entry.record = record
        except (OSError, ValueError) as error:
            for entry in batch:
                entry.error = error
        finally:
            with self._turn:
                for entry in batch:
                    entry.done = True
                self._writing = False
                self._turn.notify_all()

    def _append_all(self, batch: list[dict[str, Any]], *, durable: bool) -> list[dict[str, Any]]:
        with self._opened() as fd:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._head_opened() as head_fd:
                head = os.pread(head_fd, HEAD_BYTES * 4, 0)
                count, prev, size = _parse_head(head, self.head_path)
                actual = os.fstat(fd).st_size
                if size is not None and actual != size:
                    count, prev = self._recover(count, prev, size)
                records = []
                for fields in batch:
                    records.append(seal(fields, prev))
                    prev = records[-1]["hash"]
                data = b"".join(line_of(record) for record in records)
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write to the audit file")
                # O_APPEND under the lock: the file now ends here, no fstat needed.
                size = actual + len(data)
                _write_head(head_fd, count + len(records), prev, size, replaces=len(head))
            fcntl.flock(fd, fcntl.LOCK_UN)
            if self.fsync and durable:
                os.fsync(fd)
        return records

    def _recover(self, count: int, prev: str, size: int) -> tuple[int, str]:
        """Take in whole records written after the head by a process that died before it
        could update the head (a killed worker); refuse anything else.

        Bytes past the head must be complete lines that chain on from the head's hash: a
        torn line, a foreign line, or a file shorter than its head is left for an
        operator, and the sink refuses to append until then.
        """
        with self.path.open("rb") as trail:
            trail.seek(size)
            tail = trail.read()
        lines = tail.splitlines(keepends=True)
        verdict = verify_from(lines, prev)
        if os.path.getsize(self.path) < size or not tail.endswith(b"\n") or not verdict.ok:
            raise ValueError(
                f"{self.path} does not end where its head says; run 'reporting-svc audit verify'"
            )
        log.warning("audit trail: took in %d record(s) written past the head", len(lines))
        return count + len(lines), verdict.last_hash

    def check(self) -> str | None:
        """Why a record could not be appended now, or None: the file opens and space is left."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
            space = os.statvfs(self.path.parent)
        except OSError as error:
            return f"the audit file cannot be opened for appending ({error.strerror})"
        if space.f_bavail * space.f_frsize < MIN_FREE_BYTES:
            return "the audit file's disk is (nearly) full"
        return None

    def snapshot(self) -> Snapshot | None:
        """The head together with the trail's length at one moment; None without a head.

        Appenders write a batch and its head under the exclusive lock, so under a shared
        lock the two agree unless something is wrong. The lock is held only for these
        reads: a verifier then walks the first ``size`` bytes while downloads go on
        appending behind them.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_SH)
            if not self.head_path.is_file():
                return None
            records, last_hash, size = self._read_head()
            return Snapshot(records, last_hash, size, os.fstat(fd).st_size if fd >= 0 else 0)
        finally:
            if fd >= 0:
                os.close(fd)

    def head(self) -> tuple[int, str]:
        """(records, last hash) as the head file states them; (0, genesis) for a new trail.

        A damaged head raises ValueError, which the trail turns into "audit unavailable".
        """
        records, last_hash, _ = self._read_head()
        return records, last_hash

    def _read_head(self) -> tuple[int, str, int | None]:
        """(records, last hash, file size); the size is absent from heads of older trails."""
        try:
            fd = os.open(self.head_path, os.O_RDONLY)
        except FileNotFoundError:
            return 0, GENESIS, None
        try:
            return _parse_head(os.pread(fd, HEAD_BYTES * 4, 0), self.head_path)
        finally:
            os.close(fd)

    @contextmanager
    def _opened(self) -> Iterator[int]:
        """The trail opened for appending; closing it releases a lock still held."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(self.path, flags, 0o640)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o640)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _head_opened(self) -> Iterator[int]:
        """The head file opened for reading and rewriting; created empty for a new trail."""
        fd = os.open(self.head_path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            yield fd
        finally:
            os.close(fd)


def _parse_head(head: bytes, path: Path) -> tuple[int, str, int | None]:
    """(records, last hash, file size) from a head's bytes.

    An empty head (just created) says nothing was written yet: a trail that has lines
    anyway must chain on from the genesis, and is checked as if written past the head.
    """
    if not head:
        return 0, GENESIS, 0
    try:
        fields = json.loads(head)
        size = fields.get("size")
        return int(fields["records"]), str(fields["hash"]), None if size is None else int(size)
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"the head file {path} is damaged") from error


def _write_head(fd: int, records: int, last_hash: str, size: int, *, replaces: int) -> None:
    """Overwrite the head in place; cut whatever a longer head (``replaces`` bytes) left."""
    head = json.dumps({"records": records, "hash": last_hash, "size": size}).encode()
    if os.pwrite(fd, head.ljust(HEAD_BYTES), 0) != HEAD_BYTES:
        raise OSError(errno.ENOSPC, "short write to the audit head file")
    if replaces > HEAD_BYTES:
        os.ftruncate(fd, HEAD_BYTES)


class Snapshot(NamedTuple):
    """A head as read under the lock, and how long the trail was then."""

    records: int
    last_hash: str
    size: int | None
    length: int

    @property
    def agrees(self) -> bool:
        """The trail ended where its head says (older heads name no size: taken as so)."""
        return self.size is None or self.size == self.length


class _Pending:
    """One record waiting for its batch: filled in by whichever thread writes the batch."""

    def __init__(self, fields: dict[str, Any], durable: bool):
        self.fields = fields
        self.durable = durable
        self.done = False
        self.record: dict[str, Any] | None = None
        self.error: Exception | None = None

    def result(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        assert self.record is not None
        return self.record


class StdoutSink:
    """Emits each record as one JSON line on standard output, for platforms that ship logs.

    Beside a file sink it repeats the file's sealed records; alone, it keeps a chain of
    its own per process.
    """

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.lock = threading.Lock()
        self.prev = GENESIS

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            record = seal(fields, self.prev)
            self._write(record)
            self.prev = record["hash"]
        return record

    def emit(self, record: dict[str, Any]) -> None:
        with self.lock:
            self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        stream = self.stream or sys.stdout
        stream.write(line_of(record).decode())
        stream.flush()
