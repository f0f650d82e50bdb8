"""The storage interface every store implements, and the errors it may raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from enum import Enum
from typing import BinaryIO, ClassVar, NamedTuple, TypeVar

from .entries import Entry, Withdrawal
from .record import JobRecord

E = TypeVar("E", bound=Entry)


class StoreError(Exception):
    """The store could not be reached or answered with a failure; worth retrying later."""


class JobExists(Exception):
    """Publishing refused: files are written once and the id is taken."""


class FileMissing(Exception):
    """A record exists whose file does not."""


class Offer(Enum):
    """What a store can give delivery besides bytes; its value names it in start-up errors."""

    INTERNAL_PATH = "a path nginx can serve from its internal location"
    PRESIGNED_URL = "presigned URLs"


class StoredRange(NamedTuple):
    """A range being read from a store, and the size of the whole stored file.

    ``body`` reads from the range's start; a reader stops after the range's length (a
    local file would read on to its end). The size lets delivery refuse a file that no
    longer matches its record before a byte is sent.
    """

    body: BinaryIO
    size: int


class Store(ABC):
    """A write-once store of completed report jobs, keyed by validated job id (see layout).

    Every store reads byte ranges; what else it can do for delivery it declares in
    ``offers``, so a delivery mode that needs more is refused at start-up, not per request.
    """

    offers: ClassVar[frozenset[Offer]] = frozenset()
    #: Seconds for which this store may answer from what it read before (0: never), so
    #: the time within which a new entry, a withdrawal, reaches every process.
    remembers_for: float = 0
    #: How many bytes a worker reads at a time from a body without a descriptor: a
    #: memory bound per download, and each read a round trip for a remote store.
    block_size: int = 1024 * 1024

    @abstractmethod
    def get_record(self, job_id: str) -> JobRecord | None:
        """Return the job's record, or None when the store holds no such job."""

    @abstractmethod
    def put(self, record: JobRecord, source: BinaryIO) -> None:
        """Write the file and, last, its record; raise JobExists if the id is taken."""

    @abstractmethod
    def check(self) -> str | None:
        """Why the store cannot serve now (for readiness), or None when it can; cheap."""

    @abstractmethod
    def size_of(self, record: JobRecord) -> int | None:
        """The stored file's size, or None when it is missing; reads no content."""

    @abstractmethod
    def open_range(self, record: JobRecord, start: int, length: int) -> StoredRange:
        """Start reading ``length`` bytes from ``start``; the caller closes the body.

        Seeking is the store's (one seek, or a ranged request): no byte before ``start``
        is read. Raises FileMissing when the file is gone, StoreError when unreachable.
        """

    def internal_path(self, record: JobRecord) -> str:
        """The file's path under the store's root, for nginx to serve (Offer.INTERNAL_PATH)."""
        raise NotImplementedError(Offer.INTERNAL_PATH.value)

    def presigned_url(self, record: JobRecord, expires: int, disposition: str) -> str:
        """A GET URL for the file, valid ``expires`` seconds, that answers with the
        record's type and ``disposition`` and honours Range (Offer.PRESIGNED_URL)."""
        raise NotImplementedError(Offer.PRESIGNED_URL.value)

    @abstractmethod
    def job_ids(self) -> Iterator[str]:
        """Yield the id of every job that has a record, in no particular order."""

    @abstractmethod
    def create_entry(self, job_id: str, entry: Entry) -> bool:
        """Create the job's ``entry`` unless it exists; True when this call created it.

        The create is conditional and atomic: of writers racing on any host one wins, and
        no reader ever sees part of an entry.
        """

    @abstractmethod
    def read_entry_data(self, job_id: str, name: str) -> bytes | None:
        """The bytes of the job's entry ``name``, or None when it has none."""

    @abstractmethod
    def delete_entry(self, job_id: str, name: str) -> None:
        """Take back an entry its own writer could not complete (a purge whose audit
        record failed); nothing else ever deletes one."""

    @abstractmethod
    def entry_ids(self, name: str) -> Iterator[str]:
        """Yield the id of every job that has the entry ``name``, in no particular order."""

    @abstractmethod
    def delete_content(self, record: JobRecord) -> None:
        """Delete the job's file, keeping its record and entries; nothing if it is gone."""

    def read_entry(self, job_id: str, kind: type[E]) -> E | None:
        """The job's entry of ``kind``, or None; ValueError when it cannot be read as one."""
        data = self.read_entry_data(job_id, kind.name)
        return None if data is None else kind.from_json(data)

    def withdrawal(self, job_id: str) -> Withdrawal | None:
        """Why the job was withdrawn, or None: asked on every download (docs/api.md §6)."""
        return self.read_entry(job_id, Withdrawal)
