"""Sending a job's file: one delivery class per store and mode, chosen once at start-up.

Every delivery first asks ``conditional.decide`` what to answer from the record alone
(304, 416, 206 or the whole file); only then is the store asked for exactly those bytes.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable

from flask import Request, Response
from werkzeug.wsgi import wrap_file

from ..errors import ReportFileUnavailable
from ..settings import Settings
from ..storage import Store
from ..storage.base import FileMissing
from ..storage.layout import content_key
from ..storage.local import LocalStore
from ..storage.record import JobRecord
from ..storage.s3 import S3Store
from .attachment import content_disposition
from .bodies import ChunkStream, FileRange, TrackedBody
from .conditional import Answer, decide, has_preconditions
from .representation import file_headers, validators

BLOCK_SIZE = 1024 * 1024
MISMATCH = "The report file does not match its record"
VALIDATOR_HEADERS = (
    "If-None-Match",
    "If-Modified-Since",
    "If-Range",
    "If-Match",
    "If-Unmodified-Since",
)


class FileResponse(Response):
    """A response that sends file bytes itself; ``body`` reports what it sent on close."""

    def __init__(
        self, body: TrackedBody, status: int, headers: dict[str, str], wsgi: Iterable[bytes]
    ):
        super().__init__(wsgi, status=status, headers=headers, direct_passthrough=True)
        self.body = body


class AccelResponse(Response):
    """An X-Accel-Redirect answer; ``status_sent`` is what nginx will send (200 or 206)."""

    def __init__(self, status_sent: int, headers: dict[str, str]):
        super().__init__(status=200, headers=headers)
        self.status_sent = status_sent


class Delivery(ABC):
    """Answers a granted download of one job: the conditional decision, then the bytes."""

    name: str

    def respond(self, record: JobRecord, request: Request) -> Response:
        answer = decide(request, record)
        if answer.status == 304:
            return Response(status=304, headers=validators(record))
        headers = file_headers(record, answer)
        if request.method == "HEAD":
            return self.head(record, headers)
        return self.send(record, answer, headers, request)

    def head(self, record: JobRecord, headers: dict[str, str]) -> Response:
        """A full GET's status and headers; the store is checked, the file is not read."""
        self.check(record)
        return Response(status=200, headers=headers)

    @abstractmethod
    def check(self, record: JobRecord) -> None:
        """Raise FileMissing or ReportFileUnavailable unless the file matches the record."""

    @abstractmethod
    def send(
        self, record: JobRecord, answer: Answer, headers: dict[str, str], request: Request
    ) -> Response:
        """Answer a GET with the bytes of ``answer``."""


class LocalStreamDelivery(Delivery):
    """The worker sends the span through the WSGI file wrapper: sendfile under gunicorn."""

    name = "stream"

    def __init__(self, store: LocalStore):
        self.store = store

    def check(self, record: JobRecord) -> None:
        try:
            size = self.store.content_path(record).stat().st_size
        except FileNotFoundError:
            raise FileMissing(record.id) from None
        if size != record.size:
            raise ReportFileUnavailable(MISMATCH)

    def send(
        self, record: JobRecord, answer: Answer, headers: dict[str, str], request: Request
    ) -> Response:
        handle = self.store.open(record)
        if os.fstat(handle.fileno()).st_size != record.size:
            handle.close()
            raise ReportFileUnavailable(MISMATCH)
        span = FileRange(handle, answer.start, answer.length)
        wrapped = wrap_file(request.environ, span, BLOCK_SIZE)  # type: ignore[arg-type]
        return FileResponse(span, answer.status, headers, wrapped)


class LocalAccelDelivery(LocalStreamDelivery):
    """Behind nginx: the service decides, nginx sends the bytes (``X-Accel-Redirect``).

    The whole file goes through an internal location with ranges switched off, so a
    stale If-Range or a multi-range request cannot make nginx send a part; a 206 goes
    through one where nginx applies the client's (already checked) single range.
    """

    name = "x-accel"

    def __init__(self, store: LocalStore, prefix: str):
        super().__init__(store)
        self.prefix = "/" + prefix.strip("/") + "/"

    def send(
        self, record: JobRecord, answer: Answer, headers: dict[str, str], request: Request
    ) -> Response:
        if has_preconditions(request):  # nginx would evaluate them again, wrongly
            return super().send(record, answer, headers, request)
        self.check(record)
        kind = "range" if answer.status == 206 else "full"
        headers = {k: v for k, v in headers.items() if k not in ("Content-Length", "Content-Range")}
        headers["X-Accel-Redirect"] = f"{self.prefix}{kind}/{content_key(record.id)}"
        return AccelResponse(answer.status, headers)


class S3ProxyDelivery(Delivery):
    """The worker streams the span from S3 in fixed-size chunks; S3 does the seeking."""

    name = "proxy"

    def __init__(self, store: S3Store, chunk_size: int):
        self.store = store
        self.chunk_size = chunk_size

    def check(self, record: JobRecord) -> None:
        length = self.store.content_length(record)
        if length is None:
            raise FileMissing(record.id)
        if length != record.size:
            raise ReportFileUnavailable(MISMATCH)

    def send(
        self, record: JobRecord, answer: Answer, headers: dict[str, str], request: Request
    ) -> Response:
        stop = None if answer.status == 200 else answer.stop
        body, size = self.store.get_content(record, answer.start, stop)
        if size != record.size:
            body.close()
            raise ReportFileUnavailable(MISMATCH)
        stream = ChunkStream(body, answer.length, self.chunk_size)
        return FileResponse(stream, answer.status, headers, stream)


class S3RedirectDelivery(S3ProxyDelivery):
    """A 302 to a short-lived presigned URL that answers with the same type and disposition.

    S3 applies a plain Range itself when the client follows the redirect. It knows nothing
    of our ETag, though, and evaluates If-Modified-Since even when If-None-Match fails, so
    a request with validators, or whose Range must be ignored (several ranges, an unknown
    unit), is answered by the service through the proxy instead: the same answer as in
    every other mode.
    """

    name = "redirect"

    def __init__(self, store: S3Store, chunk_size: int, expires: int):
        super().__init__(store, chunk_size)
        self.expires = expires

    def head(self, record: JobRecord, headers: dict[str, str]) -> Response:
        return self.redirect(record)

    def send(
        self, record: JobRecord, answer: Answer, headers: dict[str, str], request: Request
    ) -> Response:
        ignored_range = answer.status == 200 and "Range" in request.headers
        if ignored_range or any(name in request.headers for name in VALIDATOR_HEADERS):
            return super().send(record, answer, headers, request)
        return self.redirect(record)

    def redirect(self, record: JobRecord) -> Response:
        self.check(record)
        url = self.store.presign(record, self.expires, content_disposition(record.fileName))
        return Response(status=302, headers={"Location": url})


def make_delivery(settings: Settings, store: Store) -> Delivery:
    """Pair the store with the delivery mode the settings choose for it."""
    if isinstance(store, S3Store):
        if settings.s3_delivery == "redirect":
            return S3RedirectDelivery(store, settings.s3_chunk_size, settings.presign_expires)
        return S3ProxyDelivery(store, settings.s3_chunk_size)
    if isinstance(store, LocalStore):
        if settings.local_delivery == "x-accel":
            return LocalAccelDelivery(store, settings.x_accel_prefix)
        return LocalStreamDelivery(store)
    raise TypeError(f"no delivery for {type(store).__name__}")
