"""One job, downloaded completely and provably: resume, verify, fsync, rename into place.

The bytes go to the job's ``.part`` in chunks as they arrive, hashed on the way, so memory
stays flat whatever the size. An existing ``.part`` is resumed with ``Range`` and
``If-Range`` (its saved ETag); a 200 to that means the file changed and starts over. A
file whose digest does not match is discarded and fetched once more from zero.

Each file is bounded: no byte past its listed (or announced) size is written, one with
no size stops at ``max_bytes``, and the whole file, retries included, has ``deadline``
seconds; a server that keeps sending fails the job instead of filling the disk.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import requests
from werkzeug.http import parse_content_range_header, parse_options_header, unquote_etag

from ..api.paths import DOWNLOAD
from .destination import Destination, Partial
from .events import Events
from .failures import AuthenticationFailed, Cancelled, DigestMismatch, JobFailed, Transient
from .manifest import Entry
from .retry import RetryPolicy
from .transport import STREAM_ERRORS, Client, chunks
from .verify import check, hash_of, repr_digest_sha256

MAX_FILE_BYTES = 64 * 1024**3
FILE_DEADLINE = 6 * 3600.0


@dataclass(frozen=True)
class FileBounds:
    """How much one file may take: bytes (all it may have when nothing says its size),
    and seconds in all."""

    max_bytes: int = MAX_FILE_BYTES
    deadline: float = FILE_DEADLINE


@dataclass(frozen=True)
class Job:
    """A run to fetch; ``sha256`` and ``size`` are the listing's, when there was one."""

    downloadId: str  # noqa: N815 - the API's name for it
    sha256: str | None = None
    size: int | None = None


class Downloader:
    """Fetches jobs into one destination; safe to use from several threads at once."""

    def __init__(
        self,
        client: Client,
        destination: Destination,
        events: Events,
        policy: RetryPolicy,
        bounds: FileBounds | None = None,
    ):
        self.bounds = bounds or FileBounds()
        self.client = client
        self.destination = destination
        self.events = events
        self.policy = policy
        self.cancelled = threading.Event()

    def unchanged(self, job: Job) -> Entry | None:
        """The job's entry when the folder already has it verified, else None.

        With the listing's SHA-256 the manifest decides alone; without one (``--id``) the
        server confirms with a conditional GET (``If-None-Match``, 304).
        """
        entry = self.destination.present(job.downloadId, job.sha256)
        if entry is None or job.sha256 is not None or not entry.etag:
            return entry
        return self.policy.run(lambda: self._confirmed(entry), self.retrying(job.downloadId))

    def fetch(self, job: Job) -> Entry:
        """The job's verified file, fetched or resumed; raises JobFailed or
        AuthenticationFailed."""
        try:
            return self._verified(job)
        except AuthenticationFailed:
            self.cancelled.set()  # no other job can succeed with this token either
            raise
        except OSError as error:
            raise JobFailed(f"cannot write the file: {error.strerror or error}") from None

    def _verified(self, job: Job) -> Entry:
        """Transient failures retried by the policy; a digest mismatch once more from zero;
        all within the file's deadline."""
        deadline = time.monotonic() + self.bounds.deadline

        def attempt() -> Entry:
            return self.policy.run(
                lambda: self._attempt(job, deadline), self.retrying(job.downloadId), deadline
            )

        try:
            return attempt()
        except DigestMismatch as error:
            reason = f"{error}; starting over"
            self.events.emit("retrying", downloadId=job.downloadId, reason=reason)
        try:
            return attempt()
        except DigestMismatch as error:
            raise JobFailed(f"{error}, twice") from None

    def _confirmed(self, entry: Entry) -> Entry | None:
        with self.client.get(
            DOWNLOAD,
            params={"id": entry.downloadId},
            headers={"If-None-Match": str(entry.etag)},
            accept=frozenset({200, 304}),
        ) as response:
            return entry if response.status_code == 304 else None

    def _attempt(self, job: Job, deadline: float) -> Entry:
        partial = self.destination.partial(job.downloadId)
        if partial is not None and partial.size == self._saved(partial):
            return self._finish(job, partial)
        with self.client.get(
            DOWNLOAD,
            params={"id": job.downloadId},
            headers=_resume_headers(partial, self._saved(partial)),
            accept=frozenset({200, 206, 416}),
        ) as response:
            partial = self._prepare(job, partial, response)
            self._receive(partial, response, self._limit(job, partial), deadline)
        return self._finish(job, partial)

    def _prepare(self, job: Job, partial: Partial | None, response: requests.Response) -> Partial:
        """The ``.part`` this answer continues (206) or starts anew (200)."""
        if partial is not None and response.status_code in (206, 416):
            offset = self._saved(partial)
            if response.status_code == 206 and _range_start(response) == offset:
                self.events.emit(
                    "resumed",
                    downloadId=job.downloadId,
                    file=partial.file,
                    size=partial.size,
                    offset=offset,
                )
                return partial
            self.destination.discard(partial)
            raise Transient(f"the saved {offset} bytes do not fit the file; starting over")
        if response.status_code != 200:
            raise JobFailed(f"unexpected {response.status_code} to a download from the start")
        if partial is not None:
            self.destination.discard(partial)
        partial = self.destination.begin(
            job.downloadId,
            _file_name(response),
            etag=response.headers.get("ETag"),
            size=_length(response),
            sha256=repr_digest_sha256(response.headers.get("Repr-Digest")),
        )
        self.events.emit("started", downloadId=job.downloadId, file=partial.file, size=partial.size)
        return partial

    def _limit(self, job: Job, partial: Partial) -> int:
        """The most bytes the file may have: its listed or announced size, else the cap."""
        sizes = {size for size in (job.size, partial.size) if size is not None}
        if len(sizes) > 1:
            self.destination.discard(partial)
            raise DigestMismatch(f"the listing says {job.size} bytes, the answer {partial.size}")
        limit = sizes.pop() if sizes else self.bounds.max_bytes
        if limit > self.bounds.max_bytes:
            self.destination.discard(partial)
            raise JobFailed(f"{limit} bytes is more than --max-file-bytes {self.bounds.max_bytes}")
        return limit

    def _receive(
        self, partial: Partial, response: requests.Response, limit: int, deadline: float
    ) -> None:
        """Append the body to the ``.part`` in chunks; a cut body is transient, with progress.
        A body that would take the file past ``limit`` bytes is discarded unwritten."""
        saved, room = 0, limit - self._saved(partial)
        late = f"the file was not done in time (--file-deadline {self.bounds.deadline:g} s)"
        with self.destination.append(partial) as out:
            try:
                for chunk in chunks(response, deadline, late):
                    if self.cancelled.is_set():
                        raise Cancelled(partial.downloadId)
                    if len(chunk) > room - saved:
                        self.destination.discard(partial)
                        raise DigestMismatch(f"the server sent more than the {limit} bytes")
                    out.write(chunk)
                    saved += len(chunk)
                    self.events.advance(partial.downloadId, len(chunk))
            except STREAM_ERRORS as error:
                raise Transient(
                    f"connection lost after {saved} bytes: {type(error).__name__}",
                    progressed=saved > 0,
                ) from None
            finally:
                out.flush()
                os.fsync(out.fileno())

    def _finish(self, job: Job, partial: Partial) -> Entry:
        """Verify the whole ``.part`` as it is on disk, then move it into place; a mismatch
        discards it. Hashing the file rather than the stream checks what a resume spliced."""
        path = self.destination.part_path(partial)
        size = path.stat().st_size
        if partial.size is not None and size < partial.size:
            raise Transient(f"{size} of {partial.size} bytes arrived", progressed=True)
        digest = hash_of(path).hexdigest()
        expected = {"Repr-Digest": partial.sha256, "listed sha256": job.sha256}
        if not any(expected.values()):  # S3 answered a redirect, and there was no listing
            etag = self._service_etag(job.downloadId, digest)
            partial = replace(partial, etag=etag)
            expected = {"service's ETag": unquote_etag(etag)[0]}
        try:
            check(digest, size, expected, partial.size or job.size)
        except DigestMismatch:
            self.destination.discard(partial)
            raise
        entry = self.destination.complete(partial, size, digest)
        self.events.emit(
            "verified", downloadId=job.downloadId, file=entry.file, size=size, sha256=digest
        )
        return entry

    def _service_etag(self, download_id: str, digest: str) -> str | None:
        """The service's ETag, the record's SHA-256 in hex, for a file that came without a
        digest: a GET with ``If-None-Match`` naming ``digest`` is answered by the service in
        every delivery mode, 304 when it is the ETag, else 200, whose body is left unread."""
        with self.client.get(
            DOWNLOAD,
            params={"id": download_id},
            headers={"If-None-Match": f'"{digest}"'},
            accept=frozenset({200, 304}),
        ) as response:
            return response.headers.get("ETag")

    def _saved(self, partial: Partial | None) -> int:
        if partial is None:
            return 0
        return self.destination.part_path(partial).lstat().st_size

    def retrying(self, download_id: str) -> Callable[[Transient, float], None]:
        """What the retry policy calls before it pauses: a ``retrying`` event."""

        def report(error: Transient, pause: float) -> None:
            self.events.emit(
                "retrying", downloadId=download_id, reason=str(error), delay=round(pause, 3)
            )

        return report


def _resume_headers(partial: Partial | None, offset: int) -> dict[str, str]:
    """``Range`` from the saved size and ``If-Range`` with the saved ETag, when both exist."""
    if partial is None or offset == 0 or not partial.etag:
        return {}
    return {"Range": f"bytes={offset}-", "If-Range": partial.etag}


def _range_start(response: requests.Response) -> int | None:
    content_range = parse_content_range_header(response.headers.get("Content-Range"))
    return None if content_range is None else content_range.start


def _length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _file_name(response: requests.Response) -> str | None:
    """The ``Content-Disposition`` file name (``filename*`` preferred), before cleaning."""
    _, parameters = parse_options_header(response.headers.get("Content-Disposition"))
    return parameters.get("filename")
