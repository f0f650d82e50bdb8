"""The headers that describe a job's file, all taken from its record: nothing is read here."""

from __future__ import annotations

import base64
from functools import lru_cache

from werkzeug.http import http_date

from ..storage.record import JobRecord
from .attachment import content_disposition
from .conditional import Answer

# Records never change once published, so their headers are worked out once per worker.
# Keyed by the whole record: a job published again under another record gets its own.
CACHED_RECORDS = 1024


def validators(record: JobRecord) -> dict[str, str]:
    """The strong ETag (the file's SHA-256) and Last-Modified.

    On a 304 Werkzeug keeps only the ETag, which RFC 9110 §15.4.5 allows: the strong
    validator is what a client compares.
    """
    return {"ETag": f'"{record.sha256}"', "Last-Modified": http_date(record.completed)}


@lru_cache(maxsize=CACHED_RECORDS)
def _description(record: JobRecord) -> dict[str, str]:
    """The headers every 200 and 206 of the record carries alike."""
    digest = base64.b64encode(bytes.fromhex(record.sha256)).decode()
    return {
        "Content-Type": record.contentType,
        "Content-Disposition": content_disposition(record.fileName),
        "Accept-Ranges": "bytes",
        **validators(record),
        "Repr-Digest": f"sha-256=:{digest}:",
    }


def file_headers(record: JobRecord, answer: Answer) -> dict[str, str]:
    """Headers of a 200 or 206: type, disposition, length, range, validators, digest.

    ``Repr-Digest`` is of the whole file (RFC 9530), also on a 206, so a client that
    resumed a download can verify what it assembled.
    """
    headers = {**_description(record), "Content-Length": str(answer.length)}
    if answer.status == 206:
        headers["Content-Range"] = answer.content_range(record.size)
    return headers
