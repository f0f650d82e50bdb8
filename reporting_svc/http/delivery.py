"""Sending a job's file: one delivery class per store and mode, chosen once at start-up."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any, Protocol

from flask import Request, Response
from werkzeug.http import http_date
from werkzeug.wsgi import wrap_file

from ..errors import ReportFileUnavailable
from ..settings import Settings
from ..storage import Store
from ..storage.base import FileMissing
from ..storage.local import LocalStore
from ..storage.record import JobRecord
from ..storage.s3 import S3Store
from .attachment import content_disposition

BLOCK_SIZE = 1024 * 1024


def file_headers(record: JobRecord) -> dict[str, str]:
    """The headers of a full download, all from the record: nothing is read or hashed here."""
    digest = base64.b64encode(bytes.fromhex(record.sha256)).decode()
    return {
        "Content-Type": record.contentType,
        "Content-Disposition": content_disposition(record.fileName),
        "Content-Length": str(record.size),
        "ETag": f'"{record.sha256}"',
        "Last-Modified": http_date(record.completed),
        "Repr-Digest": f"sha-256=:{digest}:",
    }


class Delivery(Protocol):
    """Answers a granted download of one job with its file (or a redirect to it)."""

    def respond(self, record: JobRecord, request: Request) -> Response: ...


class LocalStreamDelivery:
    """The worker sends the file through the WSGI file wrapper: sendfile under gunicorn."""

    def __init__(self, store: LocalStore):
        self.store = store

    def respond(self, record: JobRecord, request: Request) -> Response:
        if request.method == "HEAD":
            if not self.store.content_path(record).is_file():
                raise FileMissing(record.id)
            return Response(status=200, headers=file_headers(record))
        handle = self.store.open(record)
        if os.fstat(handle.fileno()).st_size != record.size:
            handle.close()
            raise ReportFileUnavailable("The report file does not match its record")
        body = wrap_file(request.environ, handle, BLOCK_SIZE)
        return Response(body, headers=file_headers(record), direct_passthrough=True)


class S3ProxyDelivery:
    """The worker streams the object from S3 in fixed-size chunks."""

    def __init__(self, store: S3Store, chunk_size: int):
        self.store = store
        self.chunk_size = chunk_size

    def respond(self, record: JobRecord, request: Request) -> Response:
        if request.method == "HEAD":
            if not self.store.has_content(record):
                raise FileMissing(record.id)
            return Response(status=200, headers=file_headers(record))
        body = self.store.get_content(record)
        chunks = _chunks(body, self.chunk_size)
        return Response(chunks, headers=file_headers(record), direct_passthrough=True)


class S3RedirectDelivery:
    """A 302 to a short-lived presigned URL that answers with the same type and disposition."""

    def __init__(self, store: S3Store, expires: int):
        self.store = store
        self.expires = expires

    def respond(self, record: JobRecord, request: Request) -> Response:
        if not self.store.has_content(record):
            raise FileMissing(record.id)
        url = self.store.presign(record, self.expires, content_disposition(record.fileName))
        return Response(status=302, headers={"Location": url})


def make_delivery(settings: Settings, store: Store) -> Delivery:
    """Pair the store with the delivery mode the settings choose for it."""
    if isinstance(store, S3Store):
        if settings.s3_delivery == "redirect":
            return S3RedirectDelivery(store, settings.presign_expires)
        return S3ProxyDelivery(store, settings.s3_chunk_size)
    if isinstance(store, LocalStore):
        return LocalStreamDelivery(store)
    raise TypeError(f"no delivery for {type(store).__name__}")


def _chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
    """Yield the object's bytes; a failure mid-way propagates so the connection is cut short."""
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()
