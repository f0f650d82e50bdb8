"""The local-disk store: the layout's keys are relative paths under one root directory."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..file_modes import make_dirs, open_new
from . import layout
from .base import FileMissing, JobExists, Offer, Store, StoredRange, StoreError
from .entries import Entry
from .record import JobRecord


class LocalStore(Store):
    """Files under ``root``; every path is built from a validated job id, never from input.

    nginx can serve the same files from an internal location aliased to ``root``, through
    the group its files and directories are readable by (reporting_svc.file_modes).
    """

    offers = frozenset({Offer.INTERNAL_PATH})

    def __init__(self, root: Path):
        """Create the root when missing, so a new deployment with no reports yet is ready;
        when it cannot be created, readiness says so."""
        self.root = Path(root).absolute()
        with contextlib.suppress(OSError):
            make_dirs(self.root)

    def content_path(self, record: JobRecord) -> Path:
        return self.root / self.internal_path(record)

    def internal_path(self, record: JobRecord) -> str:
        return layout.content_key(record.id)

    def get_record(self, job_id: str) -> JobRecord | None:
        try:
            data = (self.root / layout.record_key(job_id)).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read record: {error.strerror}") from error
        return JobRecord.from_json(data)

    def open(self, record: JobRecord) -> BinaryIO:
        """Open the job's file for reading; the caller closes it."""
        try:
            return self.content_path(record).open("rb")
        except FileNotFoundError:
            raise FileMissing(record.id) from None
        except OSError as error:
            raise StoreError(f"cannot open report file: {error.strerror}") from error

    def size_of(self, record: JobRecord) -> int | None:
        try:
            return self.content_path(record).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read report file: {error.strerror}") from error

    def open_range(self, record: JobRecord, start: int, length: int) -> StoredRange:
        """Open the file and seek once to ``start``: gunicorn's sendfile starts from the
        descriptor's offset, and any other server reads on from there."""
        handle = self.open(record)
        handle.seek(start)
        return StoredRange(handle, os.fstat(handle.fileno()).st_size)

    def put(self, record: JobRecord, source: BinaryIO) -> None:
        claim = self.root / layout.claim_key(record.id)
        make_dirs(claim.parent)
        try:
            os.close(open_new(claim, exclusive=True))
        except FileExistsError:
            raise JobExists(record.id) from None
        _write_atomically(self.root / layout.content_key(record.id), source)
        _write_atomically(self.root / layout.record_key(record.id), io.BytesIO(record.to_json()))

    def check(self) -> str | None:
        if not self.root.is_dir() or not os.access(self.root, os.R_OK | os.X_OK):
            return "the local store's root directory cannot be read"
        return None

    def job_ids(self) -> Iterator[str]:
        return self.entry_ids(layout.RECORD_NAME)

    def entry_ids(self, name: str) -> Iterator[str]:
        try:
            entries = os.scandir(self.root / layout.JOBS)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                key = f"{layout.JOBS}{entry.name}/{name}"
                job_id = layout.job_id_of_record_key(key, name)
                if job_id is not None and (self.root / key).is_file():
                    yield job_id

    def create_entry(self, job_id: str, entry: Entry) -> bool:
        """Write a temporary file, then hard-link it to the entry's name: ``link`` fails
        when the name exists, so the first writer wins and the entry appears whole."""
        path = self.root / layout.entry_key(job_id, entry.name)
        temp = path.with_name(f".{entry.name}.{uuid.uuid4().hex}.partial")
        try:
            _write_durably(temp, io.BytesIO(entry.to_json()))
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError as error:
            raise StoreError(f"cannot write {entry.name}: {error.strerror}") from error
        finally:
            temp.unlink(missing_ok=True)
        return True

    def read_entry_data(self, job_id: str, name: str) -> bytes | None:
        try:
            return (self.root / layout.entry_key(job_id, name)).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read {name}: {error.strerror}") from error

    def delete_entry(self, job_id: str, name: str) -> None:
        _delete(self.root / layout.entry_key(job_id, name))

    def delete_content(self, record: JobRecord) -> None:
        _delete(self.content_path(record))


def _delete(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise StoreError(f"cannot delete {path.name}: {error.strerror}") from error


def _write_atomically(path: Path, source: BinaryIO) -> None:
    temp = path.with_name(f".{path.name}.partial")
    _write_durably(temp, source)
    temp.rename(path)


def _write_durably(path: Path, source: BinaryIO) -> None:
    with os.fdopen(open_new(path), "wb") as target:
        shutil.copyfileobj(source, target, 1024 * 1024)
        target.flush()
        os.fsync(target.fileno())
