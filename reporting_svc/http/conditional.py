"""What a download answers (200, 206, 304, 416), decided from the record and headers alone.

Deciding before any byte is read is what lets every delivery mode, nginx's included,
behave the same: the store is asked only for the bytes of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Request
from werkzeug.http import parse_if_range_header, parse_range_header
from werkzeug.sansio.http import is_resource_modified

from ..errors import RangeNotSatisfiable
from ..storage.record import JobRecord


@dataclass(frozen=True)
class Answer:
    """The status to send and the half-open byte span ``[start, stop)`` of the body."""

    status: int
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


def decide(request: Request, record: JobRecord) -> Answer:
    """Apply RFC 9110's order: If-None-Match / If-Modified-Since, then If-Range and Range.

    A multi-range request, a stale If-Range, an unknown range unit and HEAD all get the
    whole file; a ``bytes`` range that cannot be satisfied raises RangeNotSatisfiable.
    """
    full = Answer(200, 0, record.size)
    # Only the cache validators are passed: Werkzeug reads a failed If-Match as "not
    # modified", and a 304 tells a client to keep a copy it may not have.
    if not is_resource_modified(
        http_if_modified_since=request.headers.get("If-Modified-Since"),
        http_if_none_match=request.headers.get("If-None-Match"),
        etag=record.sha256,
        last_modified=record.completed,
    ):
        return Answer(304, 0, 0)
    header = request.headers.get("Range")
    if request.method != "GET" or not header or record.size == 0:
        return full
    if not header.strip().lower().startswith("bytes="):
        return full
    if not _if_range_holds(request.headers.get("If-Range"), record):
        return full
    if "," in header:
        # Several ranges get the whole file, in any order: Werkzeug's parser refuses
        # unordered or overlapping sets outright, which would turn them into a 416.
        return full
    parsed = parse_range_header(header)
    if parsed is None:
        raise RangeNotSatisfiable(record.size)
    start, stop = parsed.ranges[0]
    if stop is None and start < -record.size:
        # A suffix longer than the file asks for all of it (RFC 9110 §14.1.2); Werkzeug
        # would compute a negative start and call the range unsatisfiable.
        return Answer(206, 0, record.size)
    span = parsed.range_for_length(record.size)
    if span is None:
        raise RangeNotSatisfiable(record.size)
    return Answer(206, span[0], span[1])


def _if_range_holds(value: str | None, record: JobRecord) -> bool:
    """No If-Range, or one naming this exact file (strong ETag, or its Last-Modified date)."""
    if value is None:
        return True
    if value.lstrip().startswith("W/"):
        return False
    if_range = parse_if_range_header(value)
    if if_range.etag is not None:
        return if_range.etag == record.sha256
    if if_range.date is not None:
        return if_range.date == record.completed.replace(microsecond=0)
    return False
