"""``reporting-svc fetch``: list the runs, skip what is verified, fetch the rest, say how it went.

Exit status 0 when every run is present and verified, 1 when some failed (each named on
standard error), 2 for a usage or authentication error, 130 after Ctrl-C (the ``.part``
files stay for the next run to resume).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TextIO, TypeVar

from ..text import visible
from .credentials import TokenMissing, TokenSource
from .destination import Destination
from .download import Downloader, FileBounds, Job
from .events import Events, events_for
from .failures import AuthenticationFailed, Cancelled, FetchError, JobFailed, UnsafeFolder
from .listing import ListingError, list_runs
from .manifest import ManifestUnreadable
from .options import FetchOptions, listing_study, options_from
from .retry import RetryPolicy
from .transport import Client

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
T = TypeVar("T")


def fetch_command(args: argparse.Namespace) -> int:
    """The ``fetch`` subcommand's entry: options from the command line, then ``run``."""
    return run(options_from(args))


def run(options: FetchOptions, *, stdout: TextIO | None = None) -> int:
    """Fetch what ``options`` ask for into its folder; returns the exit status."""
    events = events_for(json_lines=options.json, stdout=stdout)
    try:
        token = TokenSource(options.token_file)
        token.read()
        client = Client(options.url, token, timeout=options.timeout)
        policy = RetryPolicy(attempts=options.retries)
        destination = Destination(options.dest, rehash=options.rehash, read_only=options.dry_run)
        bounds = FileBounds(options.max_file_bytes, options.file_deadline)
        downloader = Downloader(client, destination, events, policy, bounds)
        return _fetch_all(options, downloader, events)
    except (TokenMissing, AuthenticationFailed, ManifestUnreadable, UnsafeFolder) as error:
        return _error(str(error), USAGE)
    except KeyboardInterrupt:
        return _error("interrupted; the .part files are kept for the next run", INTERRUPTED)
    except BrokenPipeError:
        raise  # the events' reader left: the command line ends quietly (see ..pipes)
    except OSError as error:
        return _error(f"{options.dest}: {error.strerror or error}", USAGE)
    except FetchError as error:
        return _error(str(error), FAILED)
    finally:
        events.close()


def _fetch_all(options: FetchOptions, downloader: Downloader, events: Events) -> int:
    jobs = list(_jobs(options, downloader, events))
    events.expect(len(jobs))
    wanted = []
    for job in jobs:
        entry = downloader.unchanged(job)
        if entry is not None:
            events.emit("skipped", downloadId=job.downloadId, file=entry.file, reason="verified")
        elif options.dry_run:
            events.emit("planned", downloadId=job.downloadId)
        else:
            wanted.append(job)
    failures = _download(wanted, downloader, options.parallel)
    for job, reason in failures.items():
        events.emit("failed", downloadId=job.downloadId, reason=reason)
        print(f"reporting-svc: failed: {job.downloadId}: {visible(reason)}", file=sys.stderr)
    return FAILED if failures else OK


def _jobs(options: FetchOptions, downloader: Downloader, events: Events) -> list[Job]:
    """The one job asked for, or every listed run (each announced with ``listed``)."""
    if options.job_id is not None:
        return [Job(options.job_id)]
    query = {"studyId": listing_study(options)}
    for name, value in (
        ("mode", options.mode),
        ("rptId", options.report_id),
        ("reportName", options.report_name),
    ):
        if value is not None:
            query[name] = value
    jobs = []
    deadline = time.monotonic() + options.listing_deadline
    listed = list_runs(
        downloader.client,
        query,
        _retried(downloader, deadline),
        max_runs=options.max_runs,
        deadline=deadline,
    )
    try:
        for job, run in listed:
            events.emit("listed", **_listed_fields(run, job))
            jobs.append(job)
    except JobFailed as error:
        raise ListingError(f"the listing failed: {error}") from None
    return jobs


def _download(jobs: list[Job], downloader: Downloader, parallel: int) -> dict[Job, str]:
    """Fetch in ``parallel`` threads; the failures by job. An authentication failure stops
    everything (no other job could succeed); Ctrl-C stops it and keeps the ``.part`` files."""
    failures: dict[Job, str] = {}
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures: dict[Future[Any], Job] = {pool.submit(downloader.fetch, job): job for job in jobs}
        try:
            wait(futures)
        except KeyboardInterrupt:
            downloader.cancelled.set()
            pool.shutdown(cancel_futures=True)
            raise
        for future, job in futures.items():
            error = future.exception()
            if isinstance(error, AuthenticationFailed):
                raise error
            if isinstance(error, (JobFailed, Cancelled)):
                failures[job] = str(error)
            elif error is not None:
                raise error
    return failures


def _retried(downloader: Downloader, deadline: float) -> Callable[[Callable[[], T]], T]:
    """Run one listing request under the same retry policy as the downloads."""

    def retried(page: Callable[[], T]) -> T:
        return downloader.policy.run(page, downloader.retrying("listing"), deadline)

    return retried


def _listed_fields(run: dict[str, Any], job: Job) -> dict[str, Any]:
    fields = {
        name: run.get(name) for name in ("fileName", "mode", "reportName", "rptKickoffDatetime")
    }
    return {"downloadId": job.downloadId, "size": job.size, "sha256": job.sha256, **fields}


def _error(message: str, status: int) -> int:
    """Say what went wrong on standard error; the server's words in it made visible."""
    print(f"reporting-svc: error: {visible(message)}", file=sys.stderr)
    return status
