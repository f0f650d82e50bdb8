"""Where audit records go: a JSON Lines file shared by every process, and standard output."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import logging
import os
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from ..file_modes import make_dirs
from .batches import GroupCommit
from .batches import RecordNotWrittenError as RecordNotWrittenError
from .chain import GENESIS, line_of, seal, verify_from
from .recorded import Recorded

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 1024 * 1024
# The head's JSON is padded with spaces to this width, so each rewrite covers the last.
HEAD_BYTES = 256
HEAD_FIELDS = frozenset({"records", "hash", "size"})
_HASH = re.compile("[0-9a-f]{64}")
REPAIR_HINT = "an operator must run 'reporting-svc audit repair'"


class DamagedHeadError(ValueError):
    """The head file does not hold a count, a size and a hash the sink could have written."""


class TrailMismatchError(ValueError):
    """The trail does not end where its head says: no record goes on it until an operator
    has run ``reporting-svc audit repair``."""


class Head(NamedTuple):
    """What the head file states: records so far, the last one's hash, the trail's length."""

    records: int
    last_hash: str
    size: int


EMPTY_HEAD = Head(0, GENESIS, 0)


class Crashed(NamedTuple):
    """A batch whose writer died after writing its intent and before rewriting the head:
    ``whole`` (its bytes are all there and chain from the head to the intent's hash, the
    next writer makes the intent the head) or torn short of it (the next writer cuts it)."""

    head: Head
    intent: Head
    whole: bool

    @property
    def settled(self) -> Head:
        """The head once the next writer has settled the batch."""
        return self.intent if self.whole else self.head

    def describe(self) -> str:
        first, last = self.head.records + 1, self.intent.records
        if self.whole:
            return f"records {first}-{last}, written by a writer that died before its head"
        return f"a batch (records {first}-{last}) torn by a writer that died while writing it"


class Snapshot(NamedTuple):
    """A head as read under the lock (None: there is no head file), and the trail's length.

    With a batch a crashed writer left (``crashed``), both are what they will be once the
    next writer has settled it: a crash needs no operator.
    """

    head: Head | None
    length: int
    crashed: Crashed | None = None

    @property
    def mismatch(self) -> str | None:
        """Why the trail does not end where its head says, or None when it does."""
        if self.head is None:
            return "its head file is missing" if self.length else None
        if self.length > self.head.size:
            return f"it is {self.length - self.head.size} bytes longer than its head says"
        if self.length < self.head.size:
            return f"it is {self.head.size - self.length} bytes shorter than its head says"
        return None


class Refusal(NamedTuple):
    """Why the system refused an append, and the trail's inode and length and its disk's
    free bytes then (None when they could not be read)."""

    reason: str
    standing: tuple[int, ...] | None


class Appending(NamedTuple):
    """The trail, its head and its intent opened and locked by one writer, as the head
    states it (a batch a crashed writer left already settled: ``crashed``)."""

    fd: int
    head_fd: int
    intent_fd: int
    head: Head
    length: int
    stored: int
    crashed: Crashed | None

    def write(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Seal the batch onto the trail's end and rewrite the head to name it.

        The head it will write goes to the intent file first, so a writer killed before
        its head is rewritten leaves a batch the next one can tell from a forged append.
        An append or head rewrite that fails (a full disk) takes the batch back off the
        trail before the lock is released, so the trail still ends where its head says.
        """
        records, prev = [], self.head.last_hash
        for fields in batch:
            records.append(seal(fields, prev))
            prev = records[-1]["hash"]
        data = b"".join(line_of(record) for record in records)
        # O_APPEND under the lock: the file will end here, no fstat needed.
        new = Head(self.head.records + len(records), prev, self.length + len(data))
        write_intent(self.intent_fd, self.head, new)
        try:
            if os.write(self.fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write to the audit file")
            write_head(self.head_fd, new, replaces=self.stored)
        except OSError:
            self.take_back()
            raise
        return records

    def take_back(self) -> None:
        """Cut what this writer appended, so the trail ends where the head still says."""
        if os.fstat(self.fd).st_size != self.length:
            os.ftruncate(self.fd, self.length)
            os.fsync(self.fd)

    def sync(self) -> None:
        os.fsync(self.fd)
        os.fdatasync(self.head_fd)


class FileSink:
    """Appends sealed records to one file; any number of processes and threads may share it.

    An exclusive ``flock`` on the file serialises appenders, so records never interleave
    and the chain never forks. Beside the file, ``<file>.head`` names the number of
    records, the last hash and the file's size: it is where the next ``prev`` comes from,
    and it lets ``audit verify`` notice records cut from the end, which no chain can show
    by itself. A file that does not end where its head says (records cut or added by
    hand, a head deleted) takes no record until an operator has run ``audit repair``:
    appending would fork the chain, glue a record onto half a line, or silently adopt
    lines nobody vouched for.

    A writer's own failures are not left for an operator. Before appending, a writer
    puts the head its batch will make in ``<file>.intent``; the next writer completes a
    batch whose writer was killed before its head (the bytes past the head end exactly
    at the intent's size and chain to its hash) or cuts one torn short of it, and a
    writer whose append fails (a full disk) cuts its own bytes before it lets go.

    Group commit: records that threads of one process append while another thread is
    writing go out together in the next batch, under one lock with one write and one head
    update. The fsync comes after the lock is released, so other processes append while
    this one waits for the disk (and this one writes its ``end`` records), and the kernel
    folds their flushes into one journal commit. Each caller of a durable record returns
    only once that record, and the head naming it, are on disk.

    The head is rewritten in place, padded to a fixed width, rather than replaced by a
    rename: ext4 flushes a file renamed over another at once, which cost more than the
    rest of an append together. The intent is not flushed before the append, which would
    put a disk flush inside the lock: it covers a process killed (the kernel keeps what it
    wrote), not a power cut that puts a batch on disk before its intent, nor a head torn
    by one; those still read as a mismatch, for ``audit repair``.

    An append the system refuses (a full disk or quota, an I/O error) is remembered, as by
    the stdout sink, so readiness says the trail is not being written: until an append
    succeeds, or the trail or its disk's free space changes (an operator acted).
    """

    def __init__(self, path: Path, *, fsync: bool = True):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.intent_path = self.path.with_name(self.path.name + ".intent")
        self.fsync = fsync
        self.failure: Refusal | None = None
        self._batches = GroupCommit(self._append_all)

    def append(self, fields: dict[str, Any], *, durable: bool = True) -> dict[str, Any]:
        """Seal and write one record; RecordNotWrittenError, from whatever stopped its
        batch (a full disk, a trail that does not match its head, ...), if it is not.

        A record that is not ``durable`` is written like any other but waits for no
        ``fsync`` of its own: the next durable batch's ``fsync`` (which flushes the whole
        file) or the kernel's writeback puts it on disk.
        """
        return self._batches.append(fields, durable=durable)

    def _append_all(
        self, batch: list[dict[str, Any]], durable: bool, written: Callable[[], None]
    ) -> list[dict[str, Any]]:
        with self._remembering(), self._appending() as trail:
            records = trail.write(batch)
            fcntl.flock(trail.fd, fcntl.LOCK_UN)
            written()
            if self.fsync and durable:
                trail.sync()
        return records

    def append_once(self, fields: dict[str, Any], recorded: Recorded) -> dict[str, Any] | None:
        """Seal and write one (durable) record unless the trail holds one of its event about
        its job already: None then. The check and the write happen under the lock every
        writer of this file takes, so two processes on this host never both write it.

        The trail is read from where ``recorded`` stopped to its end; a trail on another
        host is not seen at all (docs/lifecycle.md).
        """
        with self._remembering(), self._appending() as trail:
            with self.path.open("rb") as handle:
                handle.seek(recorded.position)
                marker = recorded.marker.encode()
                recorded.read(line for line in handle if marker in line)
            recorded.position = trail.length
            if recorded.holds(fields):
                return None
            (record,) = trail.write([fields])
            recorded.note(record)
            fcntl.flock(trail.fd, fcntl.LOCK_UN)
            if self.fsync:
                trail.sync()
        return record

    def settle(self) -> Crashed | None:
        """Settle a batch a crashed writer left, as the next append would; None if none.

        TrailMismatchError or DamagedHeadError if the trail needs more than that.
        """
        with self._appending() as trail:
            return trail.crashed

    @contextmanager
    def _remembering(self) -> Iterator[None]:
        """Note why the system refused an append, until one succeeds."""
        try:
            yield
        except OSError as error:
            self.failure = Refusal(error.strerror or type(error).__name__, self._standing())
            raise
        self.failure = None

    def _standing(self) -> tuple[int, ...] | None:
        """The trail's inode and length and its disk's free bytes; None if unknown."""
        try:
            trail, space = os.stat(self.path), os.statvfs(self.path.parent)
        except OSError:
            return None
        return trail.st_ino, trail.st_size, space.f_bavail * space.f_frsize

    @contextmanager
    def _appending(self) -> Iterator[Appending]:
        """The trail under the exclusive lock, its head read and checked against it, and a
        batch a crashed writer left settled."""
        with self._opened() as fd:
            fcntl.flock(fd, fcntl.LOCK_EX)
            length = os.fstat(fd).st_size
            with (
                self._head_opened(create=length == 0) as head_fd,
                self._intent_opened() as intent_fd,
            ):
                stored = os.pread(head_fd, HEAD_BYTES * 4, 0)
                head = parse_head(stored, self.head_path)
                mismatch = Snapshot(head, length).mismatch
                crashed = self._crashed(fd, head, length) if mismatch else None
                if mismatch and crashed is None:
                    raise TrailMismatchError(self.refusal(mismatch))
                replaces = len(stored)
                if crashed is not None:
                    replaces = self._settle(fd, head_fd, crashed, replaces=replaces)
                    head, length = crashed.settled, crashed.settled.size
                yield Appending(fd, head_fd, intent_fd, head, length, replaces, crashed)

    def _settle(self, fd: int, head_fd: int, crashed: Crashed, *, replaces: int) -> int:
        """Complete a whole crashed batch (its intent becomes the head) or cut a torn one
        (back to the head); returns the head file's length now."""
        if crashed.whole:
            write_head(head_fd, crashed.intent, replaces=replaces)
            replaces = HEAD_BYTES
        else:
            os.ftruncate(fd, crashed.head.size)
            os.fsync(fd)
        log.warning("audit trail %s: settled %s", self.path, crashed.describe())
        return replaces

    def _crashed(self, fd: int, head: Head | None, length: int) -> Crashed | None:
        """The batch a crashed writer left past the head, if the trail beyond it is one:
        the intent names a batch from this head, the bytes stop at or short of its size,
        and their whole lines chain from the head (to the intent's hash, if whole).
        Anything else past the head (bytes that match no intent) is no crash's."""
        base, intent = self._read_intent()
        if head is None or head != base or not head.size < length <= intent.size:
            return None
        lines = list(io.BytesIO(os.pread(fd, length - head.size, head.size)))
        whole = [line for line in lines if line.endswith(b"\n")]
        verdict = verify_from(whole, head.last_hash)
        records = head.records + verdict.records
        if not verdict.ok or records > intent.records:
            return None
        if length < intent.size:
            return Crashed(head, intent, whole=False) if records < intent.records else None
        complete = whole == lines and (records, verdict.last_hash) == (
            intent.records,
            intent.last_hash,
        )
        return Crashed(head, intent, whole=True) if complete else None

    def refusal(self, mismatch: str) -> str:
        """The message of a trail that takes no records until an operator repairs it."""
        return f"the audit trail {self.path} does not match its head: {mismatch}; {REPAIR_HINT}"

    def check(self) -> str | None:
        """Why a record could not be appended now, or None: the file opens and is a file,
        space is left, the last append did not fail, and the head is sound and names the
        trail's length (read under the lock).

        Readiness is public, so the answer names no path.
        """
        try:
            make_dirs(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            finally:
                os.close(fd)
            space = os.statvfs(self.path.parent)
            mismatch = self.snapshot().mismatch
        except OSError as error:
            return f"the audit file cannot be opened for appending ({error.strerror})"
        except DamagedHeadError:
            return f"the audit trail's head file is damaged; {REPAIR_HINT}"
        if not regular:
            return "the audit trail's file is not a regular file (its length is its head's)"
        if space.f_bavail * space.f_frsize < MIN_FREE_BYTES:
            return "the audit file's disk is (nearly) full"
        if mismatch:
            return f"the audit trail does not match its head: {mismatch}; {REPAIR_HINT}"
        refused = self._refused_still()
        if refused:
            return f"the audit trail's last append failed ({refused})"
        return None

    def _refused_still(self) -> str | None:
        """Why the last append was refused, while nothing has changed that could let the
        next one through (the same trail, as long, with no more room on its disk); or None."""
        failure = self.failure
        if failure is None:
            return None
        now = self._standing()
        if now is None or failure.standing is None:
            return failure.reason
        unchanged = now[:2] == failure.standing[:2] and now[2] <= failure.standing[2]
        return failure.reason if unchanged else None

    def snapshot(self) -> Snapshot:
        """The head together with the trail's length at one moment.

        Appenders write a batch and its head under the exclusive lock, so under a shared
        lock the two agree unless something is wrong. The lock is held only for these
        reads: a verifier then walks the first ``length`` bytes while downloads go on
        appending behind them. DamagedHeadError if the head is not one a sink wrote.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return Snapshot(self._read_head(), 0)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            snapshot = Snapshot(self._read_head(), os.fstat(fd).st_size)
            crashed = (
                self._crashed(fd, snapshot.head, snapshot.length) if snapshot.mismatch else None
            )
        finally:
            os.close(fd)
        if crashed is None:
            return snapshot
        return Snapshot(crashed.settled, crashed.settled.size, crashed)

    def head(self) -> Head:
        """The head file's statement; the empty head for a trail not begun.

        A damaged head raises DamagedHeadError, which the trail turns into "audit unavailable".
        """
        return self._read_head() or EMPTY_HEAD

    def _read_head(self) -> Head | None:
        try:
            fd = os.open(self.head_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return parse_head(os.pread(fd, HEAD_BYTES * 4, 0), self.head_path)
        finally:
            os.close(fd)

    def _read_intent(self) -> tuple[Head | None, Head]:
        """The head the last batch began from and the one it meant to write; (None, the
        empty head) if no sink wrote them."""
        try:
            stored = self.intent_path.read_bytes()
            if len(stored) == 2 * HEAD_BYTES:
                base = parse_head(stored[:HEAD_BYTES], self.intent_path)
                return base, parse_head(stored[HEAD_BYTES:], self.intent_path)
        except (FileNotFoundError, DamagedHeadError):
            pass
        return None, EMPTY_HEAD

    @contextmanager
    def _opened(self) -> Iterator[int]:
        """The trail opened for appending (and reading what a crashed writer left); closing
        it releases a lock still held."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(self.path, flags, 0o640)
        except FileNotFoundError:
            make_dirs(self.path.parent)
            fd = os.open(self.path, flags, 0o640)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _head_opened(self, *, create: bool) -> Iterator[int]:
        """The head file opened for reading and rewriting; created empty only for an empty
        trail, since a trail with records and no head has lost what vouched for them."""
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        try:
            fd = os.open(self.head_path, flags, 0o640)
        except FileNotFoundError as error:
            raise TrailMismatchError(self.refusal("its head file is missing")) from error
        try:
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _intent_opened(self) -> Iterator[int]:
        """The intent file opened for rewriting, created when missing."""
        fd = os.open(self.intent_path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            yield fd
        finally:
            os.close(fd)


def parse_head(stored: bytes, path: Path) -> Head:
    """The head a sink wrote: a record count and a size (integers, not negative) and a
    64-hex hash. An empty head (created, nothing written yet) stands for an empty trail;
    anything else is damaged, and a damaged head vouches for nothing."""
    if not stored:
        return EMPTY_HEAD
    try:
        fields = json.loads(stored, parse_constant=_not_a_number)
    except ValueError as error:
        raise DamagedHeadError(f"the audit trail's head file {path} is damaged") from error
    if not isinstance(fields, dict) or set(fields) != HEAD_FIELDS:
        raise DamagedHeadError(f"the audit trail's head file {path} is damaged")
    head = Head(fields["records"], fields["hash"], fields["size"])
    sound = (
        _count(head.records)
        and _count(head.size)
        and isinstance(head.last_hash, str)
        and _HASH.fullmatch(head.last_hash) is not None
        and (head.records == 0) == (head.size == 0) == (head.last_hash == GENESIS)
    )
    if not sound:
        raise DamagedHeadError(f"the audit trail's head file {path} is damaged")
    return head


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is no number")


def write_head(fd: int, head: Head, *, replaces: int) -> None:
    """Overwrite the head in place; cut whatever a longer head (``replaces`` bytes) left."""
    if os.pwrite(fd, _padded(head), 0) != HEAD_BYTES:
        raise OSError(errno.ENOSPC, "short write to the audit head file")
    if replaces > HEAD_BYTES:
        os.ftruncate(fd, HEAD_BYTES)


def write_intent(fd: int, base: Head, new: Head) -> None:
    """Overwrite the intent in place: the head a batch begins from, and the one it will write."""
    if os.pwrite(fd, _padded(base) + _padded(new), 0) != 2 * HEAD_BYTES:
        raise OSError(errno.ENOSPC, "short write to the audit intent file")


def _padded(head: Head) -> bytes:
    """The head's JSON, padded with spaces to its fixed width."""
    stored = json.dumps({"records": head.records, "hash": head.last_hash, "size": head.size})
    return stored.encode().ljust(HEAD_BYTES)


class StdoutSink:
    """Emits each record as one JSON line on standard output, for platforms that ship logs.

    Beside a file sink it repeats the file's sealed records; alone, it keeps a chain of
    its own per process. A write that fails is raised (the record fails closed) and
    remembered until one succeeds, so readiness can say the trail is not being written.
    """

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.lock = threading.Lock()
        self.prev = GENESIS
        self.failure: str | None = None

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            record = seal(fields, self.prev)
            self._write(record)
            self.prev = record["hash"]
        return record

    def emit(self, record: dict[str, Any]) -> None:
        with self.lock:
            self._write(record)

    def check(self) -> str | None:
        """Why the last record could not be written to standard output, or None."""
        failure = self.failure
        return None if failure is None else f"the audit trail's standard output failed ({failure})"

    def _write(self, record: dict[str, Any]) -> None:
        stream = self.stream or sys.stdout
        try:
            stream.write(line_of(record).decode())
            stream.flush()
        except Exception as error:
            self.failure = str(error) or type(error).__name__
            raise
        self.failure = None
