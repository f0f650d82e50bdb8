"""What ``reporting-svc fetch`` is asked to do: its command line, checked and typed."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..ids import normalise_guid
from .credentials import TOKEN_VARIABLE
from .download import FILE_DEADLINE, MAX_FILE_BYTES
from .failures import JobFailed
from .listing import LISTING_DEADLINE, MAX_RUNS
from .transport import UNSAFE_IN_URL, connection_origin

TENANT = "null"
MODES = ("test", "active", "training")


@dataclass(frozen=True)
class FetchOptions:
    """One fetch: a study (or the tenant, ``study`` None) to page through, or one job."""

    url: str
    dest: Path
    job_id: str | None = None
    study: str | None = None
    mode: str | None = None
    report_id: str | None = None
    report_name: str | None = None
    parallel: int = 2
    json: bool = False
    dry_run: bool = False
    retries: int = 6
    timeout: float = 60.0
    token_file: Path | None = None
    rehash: bool = False
    max_file_bytes: int = MAX_FILE_BYTES
    file_deadline: float = FILE_DEADLINE
    max_runs: int = MAX_RUNS
    listing_deadline: float = LISTING_DEADLINE


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fetch``; argparse turns a bad one into exit status 2.

    No abbreviations: ``--token SECRET`` must be an error, not ``--token-file SECRET``.
    An error names the option and its rule, never the value given: a token typed in the
    wrong place must not reach the terminal or a CI log.
    """
    parser.allow_abbrev = False
    parser.description = (
        "Download a study's reports, or one job, into DIR: resume, verify, keep a manifest. "
        f"The token comes from ${TOKEN_VARIABLE} or --token-file, never from an argument."
    )
    parser.add_argument("--url", required=True, type=_base_url, help="the service's base URL")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--study", type=_study, metavar="ID|null", help="every run of a study")
    what.add_argument("--id", dest="job_id", type=_guid, metavar="JOB", help="one report job")
    parser.add_argument("--mode", type=_mode, help="only runs of this mode: " + ", ".join(MODES))
    parser.add_argument("--report-id", type=_guid, metavar="G", help="only runs of this report")
    parser.add_argument("--report-name", metavar="N", help="only runs of this report name")
    parser.add_argument("--dest", required=True, type=Path, metavar="DIR")
    parser.add_argument("--parallel", type=_positive, default=2, metavar="K")
    parser.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched")
    parser.add_argument("--retries", type=_positive, default=6, metavar="N")
    parser.add_argument("--timeout", type=_seconds, default=60.0, metavar="SECONDS")
    parser.add_argument("--token-file", type=Path, metavar="F", help="re-read before each request")
    parser.add_argument(
        "--rehash", action="store_true", help="hash every file already in DIR before skipping it"
    )
    bounds = parser.add_argument_group("bounds (a server that never stops fails the fetch)")
    bounds.add_argument("--max-file-bytes", type=_positive, default=MAX_FILE_BYTES, metavar="N")
    bounds.add_argument("--file-deadline", type=_seconds, default=FILE_DEADLINE, metavar="S")
    bounds.add_argument("--max-runs", type=_positive, default=MAX_RUNS, metavar="N")
    bounds.add_argument("--listing-deadline", type=_seconds, default=LISTING_DEADLINE, metavar="S")


def options_from(args: argparse.Namespace) -> FetchOptions:
    """The parsed command line as options; the study ``null`` becomes the tenant (None)."""
    tenant_or_study = None if args.study in (None, TENANT) else args.study
    return FetchOptions(
        url=args.url,
        dest=args.dest,
        job_id=args.job_id,
        study=tenant_or_study,
        mode=args.mode,
        report_id=args.report_id,
        report_name=args.report_name,
        parallel=args.parallel,
        json=args.json,
        dry_run=args.dry_run,
        retries=args.retries,
        timeout=args.timeout,
        token_file=args.token_file,
        rehash=args.rehash,
        max_file_bytes=args.max_file_bytes,
        file_deadline=args.file_deadline,
        max_runs=args.max_runs,
        listing_deadline=args.listing_deadline,
    )


def listing_study(options: FetchOptions) -> str:
    """The ``studyId`` of a downloadList query: the study GUID, or ``null`` for the tenant."""
    return options.study or TENANT


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError("not an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError("the URL takes no credentials, query or fragment")
    try:
        if UNSAFE_IN_URL.search(value):
            raise JobFailed("a backslash, whitespace, a control or a non-ASCII character")
        connection_origin(value)
    except JobFailed:
        raise argparse.ArgumentTypeError("not a URL every parser reads as one host") from None
    return value.rstrip("/")


def _guid(value: str) -> str:
    try:
        return normalise_guid(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _study(value: str) -> str:
    return TENANT if value.lower() in ("", TENANT) else _guid(value)


def _mode(value: str) -> str:
    if value.lower() not in MODES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(MODES)}")
    return value.lower()


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError("must be a whole number, 1 or more")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return seconds
