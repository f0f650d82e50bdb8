"""The headers that describe a job's file, all taken from its record: nothing is read here."""

from __future__ import annotations

import base64

from werkzeug.http import http_date

from ..storage.record import JobRecord
from .attachment import content_disposition
from .conditional import Answer


def validators(record: JobRecord) -> dict[str, str]:
    """The strong ETag (the file's SHA-256) and Last-Modified.

    On a 304 Werkzeug keeps only the ETag, which RFC 9110 §15.4.5 allows: the strong
    validator is what a client compares.
    """
    return {"ETag": f'"{record.sha256}"', "Last-Modified": http_date(record.completed)}


def file_headers(record: JobRecord, answer: Answer) -> dict[str, str]:
    """Headers of a 200 or 206: type, disposition, length, range, validators, digest.

    ``Repr-Digest`` is of the whole file (RFC 9530), also on a 206, so a client that
    resumed a download can verify what it assembled.
    """
    digest = base64.b64encode(bytes.fromhex(record.sha256)).decode()
    headers = {
        "Content-Type": record.contentType,
        "Content-Disposition": content_disposition(record.fileName),
        "Content-Length": str(answer.length),
        "Accept-Ranges": "bytes",
        **validators(record),
        "Repr-Digest": f"sha-256=:{digest}:",
    }
    if answer.status == 206:
        headers["Content-Range"] = answer.content_range(record.size)
    return headers
