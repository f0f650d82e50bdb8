"""Putting a finished report into a store: the one code path for the CLI and upstream code."""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from datetime import UTC, datetime
from pathlib import Path

from .ids import normalise_guid
from .storage import JobRecord, Store
from .storage.record import COMPLETED, DEFAULT_PERMISSION, MODES, parse_instant

_EXTRA_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
    ".pdf": "application/pdf",
    ".json": "application/json",
    ".txt": "text/plain",
}
MAX_REPORT_NAME = 255


class PublishError(ValueError):
    """An argument of a publish call that cannot become a valid record."""


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
) -> JobRecord:
    """Hash the file, build its record and write both to ``store``; the id must be new.

    ``study_id`` None publishes a tenant-level report. Raises PublishError for bad
    arguments and storage.JobExists when the id is taken.
    """
    path = Path(path)
    record = JobRecord(
        id=_guid("job id", job_id or uuid.uuid4().hex),
        studyId=_guid("study id", study_id) if study_id is not None else None,
        mode=_mode(mode),
        reportName=_report_name(report_name),
        rptKickoffDatetime=_kickoff(kickoff),
        rptFormat=path.suffix.lstrip(".").upper() or "BIN",
        status=COMPLETED,
        fileName=file_name or path.name,
        contentType=content_type_for(file_name or path.name),
        size=path.stat().st_size,
        sha256=_sha256(path),
        completedAt=_now(),
        requiredPermission=required_permission,
    )
    with path.open("rb") as source:
        store.put(record, source)
    return record


def content_type_for(file_name: str) -> str:
    """The media type clients expect for a report file name; octet-stream when unknown."""
    suffix = Path(file_name).suffix.lower()
    guessed = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(file_name)[0]
    return guessed or "application/octet-stream"


def _guid(what: str, value: str) -> str:
    try:
        return normalise_guid(value)
    except ValueError as error:
        raise PublishError(f"{what} {value!r}: {error}") from None


def _mode(mode: str) -> str:
    if mode.lower() not in MODES:
        raise PublishError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode.lower()


def _report_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_REPORT_NAME or not name.isprintable():
        raise PublishError("report name must be 1 to 255 printable characters")
    return name


def _kickoff(kickoff: str | None) -> str:
    if kickoff is None:
        return _now()
    try:
        parse_instant(kickoff)
    except ValueError:
        raise PublishError(f"kickoff {kickoff!r} is not an ISO-8601 date-time") from None
    return kickoff


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
