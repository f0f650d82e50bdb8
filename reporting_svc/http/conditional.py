"""What a download answers (200, 206, 304, 412, 416), decided from the record and headers alone.

Deciding before any byte is read is what lets every delivery mode, nginx's included,
behave the same: the store is asked only for the bytes of the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Request
from werkzeug.http import http_date, parse_date, parse_etags
from werkzeug.sansio.http import is_resource_modified

from ..errors import PreconditionFailed, RangeNotSatisfiable
from ..storage.record import JobRecord
from .headers import (
    IF_MATCH,
    IF_MODIFIED_SINCE,
    IF_NONE_MATCH,
    IF_RANGE,
    IF_UNMODIFIED_SINCE,
    PRECONDITION_HEADERS,
    RANGE,
)

# nginx's grammar for one range, which it applies again to the client's Range header when
# it sends an x-accel 206: spaces (not tabs) around the numbers, ASCII digits only.
_ONE_RANGE = re.compile(r"bytes= *(?:(\d+) *- *(\d*)|-(\d+)) *", re.IGNORECASE | re.ASCII)
# nginx keeps positions in an off_t and answers 416 to any larger number.
MAX_POSITION = 2**63 - 1


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
    """Apply RFC 9110 §13.2.2's order: If-Match, else If-Unmodified-Since (412 when they
    fail), then If-None-Match / If-Modified-Since (304), then If-Range and Range.

    A multi-range request, a stale If-Range, an unknown range unit and HEAD all get the
    whole file; a ``bytes`` range that nginx would not satisfy raises RangeNotSatisfiable.
    """
    _check_preconditions(request, record)
    # Only the cache validators are passed: Werkzeug reads a failed If-Match as "not
    # modified", and a 304 tells a client to keep a copy it may not have.
    if not is_resource_modified(
        http_if_modified_since=request.headers.get(IF_MODIFIED_SINCE),
        http_if_none_match=request.headers.get(IF_NONE_MATCH),
        etag=record.sha256,
        last_modified=record.completed,
    ):
        return Answer(304, 0, 0)
    full = Answer(200, 0, record.size)
    header = request.headers.get(RANGE, "").strip(" \t")
    if request.method != "GET" or not header or record.size == 0:
        return full
    if not header.lower().startswith("bytes="):
        return full
    if not _if_range_holds(request.headers.get(IF_RANGE), record):
        return full
    if "," in header:
        # Several ranges get the whole file, in any order (and nginx, sent to its
        # whole-file location, ignores them too).
        return full
    start, stop = _one_range(header, record.size)
    return Answer(206, start, stop)


def has_preconditions(request: Request) -> bool:
    """Whether the request carries a validator that only the service can evaluate."""
    return any(name in request.headers for name in PRECONDITION_HEADERS)


def _check_preconditions(request: Request, record: JobRecord) -> None:
    """Raise PreconditionFailed unless If-Match (or, without it, If-Unmodified-Since) holds.

    If-Match uses the strong comparison, so a weak tag never matches; an If-Unmodified-Since
    that is not a date is ignored (RFC 9110 §13.1.4).
    """
    if_match = request.headers.get(IF_MATCH)
    if if_match is not None:
        if not parse_etags(if_match).contains(record.sha256):
            raise PreconditionFailed("If-Match does not name the report file's ETag")
        return
    since = parse_date(request.headers.get(IF_UNMODIFIED_SINCE))
    if since is not None and record.completed.replace(microsecond=0) > since:
        raise PreconditionFailed("The report file was completed after If-Unmodified-Since")


def _if_range_holds(value: str | None, record: JobRecord) -> bool:
    """No If-Range, or one exactly equal to the ETag or Last-Modified (RFC 9110 §13.1.5).

    nginx compares byte for byte as well, so it resumes whatever resumes here.
    """
    if value is None:
        return True
    return value.strip(" \t") in (f'"{record.sha256}"', http_date(record.completed))


def _one_range(header: str, size: int) -> tuple[int, int]:
    """The span ``[start, stop)`` of one ``bytes`` range, exactly as nginx computes it.

    A suffix longer than the file, or an end past it, is cut to the file (RFC 9110
    §14.1.2); a range nginx would refuse raises RangeNotSatisfiable here too.
    """
    match = _ONE_RANGE.fullmatch(header)
    if match is None:
        raise RangeNotSatisfiable(size)
    first, last, suffix = match.groups()
    if suffix is not None:
        start, stop = max(size - _position(suffix, size), 0), size
    else:
        start = _position(first, size)
        stop = min(_position(last, size) + 1, size) if last else size
    if start >= stop:
        raise RangeNotSatisfiable(size)
    return start, stop


def _position(digits: str, size: int) -> int:
    """A position in the header as a number; one beyond nginx's off_t is unsatisfiable."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(MAX_POSITION)) or int(significant) > MAX_POSITION:
        raise RangeNotSatisfiable(size)
    return int(significant)
