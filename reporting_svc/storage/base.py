"""The storage interface every store implements, and the errors it may raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import BinaryIO

from .record import JobRecord


class StoreError(Exception):
    """The store could not be reached or answered with a failure; worth retrying later."""


class JobExists(Exception):
    """Publishing refused: files are written once and the id is taken."""


class FileMissing(Exception):
    """A record exists whose file does not."""


class Store(ABC):
    """A write-once store of completed report jobs, keyed by validated job id (see layout)."""

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
    def job_ids(self) -> Iterator[str]:
        """Yield the id of every job that has a record, in no particular order."""
