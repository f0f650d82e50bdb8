"""The storage interface every store implements, and the errors it may raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from enum import Enum
from typing import BinaryIO, ClassVar, NamedTuple

from .record import JobRecord


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

    @abstractmethod
    def get_record(self, job_id: str) -> JobRecord | None:
        """Return the job's record, or None when the store holds no such job."""

    @abstractmethod
    def put(self, record: JobRecord, source: BinaryIO) -> None:
        """Write the file, its index entry and, last, its record; raise JobExists if taken."""

    @abstractmethod
    def check(self) -> str | None:
        """Why the store cannot serve now (for readiness), or None when it can; cheap."""

    @abstractmethod
    def list_job_ids(self, study_id: str | None, mode: str) -> list[str]:
        """Return the ids of one study's (None: the tenant's) jobs in one mode."""

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
