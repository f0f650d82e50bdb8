"""Putting a finished report into a store: the one code path for the CLI and upstream code."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from ..catalog import Catalog, CatalogError
from ..ids import normalise_guid
from ..settings import MAX_RETENTION_DAYS
from ..storage import JobExists, JobRecord, Store
from ..storage.file_names import check_file_name
from ..storage.record import (
    COMPLETED,
    DEFAULT_PERMISSION,
    check_report_name,
    format_instant,
    given_instant,
    normalise_mode,
    now_instant,
    parse_instant,
)

_EXTRA_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
    ".pdf": "application/pdf",
    ".json": "application/json",
    ".txt": "text/plain",
}
MAX_SPEC = 4096
_PERMISSION = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class PublishError(ValueError):
    """An argument of a publish call that cannot become a valid record."""


class NotIndexed(Exception):
    """The job is in the store but its catalog write failed: it is not listed yet.

    Publishing the same file under the same id again, or ``catalog rebuild``, indexes it.
    """

    def __init__(self, job_id: str, cause: CatalogError):
        super().__init__(f"job {job_id} is in the store but not in the catalog: {cause}")
        self.job_id = job_id


def publish_report(
    store: Store,
    path: Path,
    *,
    report_name: str,
    mode: str,
    study_id: str | None,
    job_id: str | None = None,
    kickoff: str | None = None,
    required_permission: str = DEFAULT_PERMISSION,
    file_name: str | None = None,
    rpt_id: str | None = None,
    search_spec: str | None = None,
    sort_spec: str | None = None,
    retain_days: int | None = None,
    expires_at: str | None = None,
    allow_past_expiry: bool = True,
    catalog: Catalog | None = None,
) -> JobRecord:
    """Hash the file, build its record and write both to ``store``, then index it in
    ``catalog`` (without one, only ``catalog rebuild`` makes the job listed).

    ``study_id`` None publishes a tenant-level report. ``retain_days`` sets ``expiresAt``
    that many days after completion; ``expires_at`` sets it to an instant instead (an
    upstream system's own deadline; a past one publishes the job expired, unless
    ``allow_past_expiry`` is False, as the command line makes it by default). Raises
    PublishError for bad arguments, storage.JobExists when the id is taken, and
    NotIndexed when the store took the job but the catalog did not. Publishing the same
    file under the same id again then indexes the stored job without writing a second file.
    """
    path = Path(path)
    name = _valid("file name", check_file_name, path.name if file_name is None else file_name)
    job = _valid("job id", normalise_guid, uuid.uuid4().hex if job_id is None else job_id)
    study = _valid("study id", normalise_guid, study_id) if study_id is not None else None
    mode = _valid("mode", normalise_mode, mode)
    report_name = _valid("report name", check_report_name, report_name)
    kickoff, permission = _kickoff(kickoff), _permission(required_permission)
    size, sha256 = _measure(path)
    completed = now_instant()
    record = JobRecord(
        id=job,
        studyId=study,
        mode=mode,
        reportName=report_name,
        rptKickoffDatetime=kickoff,
        rptFormat=Path(name).suffix.lstrip(".").upper() or "BIN",
        status=COMPLETED,
        fileName=name,
        contentType=content_type_for(name),
        size=size,
        sha256=sha256,
        completedAt=completed,
        requiredPermission=permission,
        rptId=_valid("report id", normalise_guid, rpt_id) if rpt_id is not None else None,
        currSearchSpec=_spec("search spec", search_spec),
        currSortSpec=_spec("sort spec", sort_spec),
        expiresAt=_expiry(completed, retain_days, expires_at, allow_past_expiry),
    )
    with path.open("rb") as source:
        try:
            store.put(record, source)
        except JobExists:
            record = _stored_but_not_indexed(store, catalog, record)
    if catalog is not None:
        try:
            catalog.add(record)
        except CatalogError as error:
            raise NotIndexed(record.id, error) from error
    return record


def _stored_but_not_indexed(store: Store, catalog: Catalog | None, record: JobRecord) -> JobRecord:
    """The stored record of an earlier publish of this very file whose catalog write
    failed; any other taken id stays refused."""
    stored = store.get_record(record.id)
    if (
        catalog is None
        or stored is None
        or stored.sha256 != record.sha256
        or catalog.has(record.id)
    ):
        raise JobExists(record.id)
    return stored


def content_type_for(file_name: str) -> str:
    """The media type clients expect for a report file name; octet-stream when unknown."""
    suffix = Path(file_name).suffix.lower()
    guessed = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(file_name)[0]
    return guessed or "application/octet-stream"


def _valid(what: str, check: Callable[[str], str], value: str) -> str:
    """``check(value)``: the rule records keep, its ValueError a PublishError naming ``what``."""
    try:
        return check(value)
    except ValueError as error:
        raise PublishError(f"{what} {value!r}: {error}") from None


def _spec(what: str, value: str | None) -> str | None:
    if value is not None and not (1 <= len(value) <= MAX_SPEC and value.isprintable()):
        raise PublishError(f"{what} must be 1 to {MAX_SPEC} printable characters")
    return value


def _permission(permission: str) -> str:
    if not _PERMISSION.fullmatch(permission):
        raise PublishError("required permission must be 1 to 128 of A-Z a-z 0-9 _ . : -")
    return permission


def _expiry(
    completed: str, retain_days: int | None, expires_at: str | None, allow_past: bool
) -> str | None:
    if retain_days is not None and expires_at is not None:
        raise PublishError("give a retention in days or an expiry instant, not both")
    if expires_at is not None:
        expiry = _instant("expiry", expires_at)
        if not allow_past and parse_instant(expiry) <= parse_instant(completed):
            raise PublishError(
                f"expiry {expires_at!r} is already past: the report would be gone (410) "
                "from the start; allow a past expiry (--allow-past-expiry) to publish it so"
            )
        return expiry
    if retain_days is None:
        return None
    if not 1 <= retain_days <= MAX_RETENTION_DAYS:
        raise PublishError(f"retention must be from 1 to {MAX_RETENTION_DAYS} days")
    return format_instant(parse_instant(completed) + timedelta(days=retain_days))


def _kickoff(kickoff: str | None) -> str:
    return now_instant() if kickoff is None else _instant("kickoff", kickoff)


def _instant(what: str, value: str) -> str:
    """The instant in the records' one form; one without a zone is refused, not guessed."""
    try:
        return format_instant(given_instant(value))
    except ValueError as error:
        raise PublishError(f"{what} {value!r} {error}") from None


def _measure(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of the file; an unreadable file is a bad argument, not a crash."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return size, hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise PublishError(f"cannot read report file {path}: {error.strerror}") from None
