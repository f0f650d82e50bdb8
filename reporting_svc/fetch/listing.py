"""Paging through downloadList (docs/api.md §5) until ``hasMore`` is ``"false"``.

Runs are newest first, so a run published while we page pushes older ones to later
offsets: a run may then come twice (it is yielded once), never not at all. A listing is
bounded: at most ``max_runs`` runs received, ``MAX_PAGE_BYTES`` a page, and a deadline
for the whole, so a server that says ``hasMore`` forever fails it rather than run on.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from ..api.paths import DOWNLOAD_LIST
from ..ids import normalise_guid
from .download import Job
from .failures import AuthenticationFailed, FetchError, JobFailed, Transient
from .transport import STREAM_ERRORS, Client, chunks

PAGE_SIZE = 200
MAX_PAGE_BYTES = 16 * 1024 * 1024
MAX_RUNS = 100_000
LISTING_DEADLINE = 600.0
LATE = "the listing was not done in time (--listing-deadline)"
HAS_MORE = {"true": True, "false": False}


class ListingError(FetchError):
    """The server's listing does not read as docs/api.md §5 says; no job can be trusted from it."""


Page = Callable[[Callable[[], dict[str, Any]]], dict[str, Any]]


def list_runs(
    client: Client,
    query: dict[str, str],
    retried: Page,
    *,
    page_size: int = PAGE_SIZE,
    max_runs: int = MAX_RUNS,
    deadline: float = math.inf,
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Each listed run once, as a job and the listing's own fields; ``retried(fetch_page)``
    runs one page request under the retry policy. ListingError past ``max_runs`` runs
    received or ``deadline`` (a ``time.monotonic()``)."""
    offset, seen, received = 0, set(), 0
    while True:
        if time.monotonic() > deadline:
            raise ListingError(LATE)
        params = {**query, "limit": str(page_size), "offset": str(offset)}
        result = retried(functools.partial(_page, client, params, deadline))
        runs = result.get("reportRunStatus")
        more = HAS_MORE.get(str(result.get("hasMore")))
        if not isinstance(runs, list) or more is None:
            raise ListingError("the listing has no reportRunStatus list or no hasMore")
        received += len(runs)
        if received > max_runs:
            raise ListingError(f"the listing goes past {max_runs} runs (--max-runs)")
        for run in runs:
            job = _job(run)
            if job.downloadId not in seen:
                seen.add(job.downloadId)
                yield job, run
        if not more:
            return
        if not runs:
            raise ListingError(f'hasMore is "true" but the page at offset {offset} is empty')
        offset += len(runs)


def _page(client: Client, params: dict[str, str], deadline: float) -> dict[str, Any]:
    """One page's ``result``; a 403 (no grant for the study) is the caller's, like a 401."""
    try:
        with client.get(DOWNLOAD_LIST, params=params) as response:
            body = json.loads(_capped(response, deadline))
    except STREAM_ERRORS as error:
        raise Transient(f"the listing was cut: {type(error).__name__}") from None
    except JobFailed as error:
        if error.status == 403:
            raise AuthenticationFailed(f"the server refused the listing: {error}") from None
        raise
    except ValueError:
        raise ListingError("the listing is not JSON") from None
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        raise ListingError("the listing has no result")
    return result


def _capped(response: requests.Response, deadline: float) -> bytes:
    """A page's body, read to its end unless it passes MAX_PAGE_BYTES or the deadline."""
    body = bytearray()
    for chunk in chunks(response, deadline, LATE):
        body += chunk
        if len(body) > MAX_PAGE_BYTES:
            raise ListingError(f"a listing page is over {MAX_PAGE_BYTES} bytes")
    return bytes(body)


def _job(run: Any) -> Job:
    """A listed run as a job; its id must be a GUID, as it becomes part of a file name."""
    try:
        download_id = normalise_guid(str(run["downloadId"]))
        sha256 = str(run["sha256"]).lower() if run.get("sha256") else None
        size = int(run["size"]) if run.get("size") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ListingError(f"a listed run has no valid downloadId: {str(run)[:200]}") from None
    return Job(download_id, sha256, size)
