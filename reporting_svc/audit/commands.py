"""``reporting-svc audit verify`` and ``audit show``: check the chain, read the records.

Both read the file line by line, so a trail of any size needs constant memory. ``verify``
is what an inspector runs; its exit status and first line are the answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from ..ids import GUID_RULE, normalise_guid
from ..settings import Settings
from ..storage.record import parse_instant
from ..text import visible, visible_json
from .chain import Verdict, verify
from .repair import add_repair_arguments
from .sinks import DamagedHeadError, FileSink, Snapshot

COLUMNS = (
    ("time", 24),
    ("event", 12),
    ("status", 6),
    ("subject", 20),
    ("job", 32),
    ("study", 32),
    ("mode", 8),
    ("bytes", 12),
    ("complete", 8),
)


def add_audit_commands(parser: argparse.ArgumentParser) -> None:
    """Give the ``audit`` subcommand its own: ``verify``, ``repair`` and ``show``."""
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = commands.add_parser("verify", help="check the hash chain and the head file")
    check.add_argument("file", nargs="?", type=Path, help="default: the configured trail")
    check.set_defaults(run=verify_command)

    repair = commands.add_parser("repair", help="put a trail that does not match its head back")
    add_repair_arguments(repair)

    show = commands.add_parser("show", help="print the records that match every filter")
    show.add_argument("--study", type=_guid, metavar="ID")
    show.add_argument("--subject", metavar="S")
    show.add_argument("--job", type=_guid, metavar="ID")
    show.add_argument("--since", type=_instant, metavar="ISO", help="from this instant on")
    show.add_argument("--until", type=_instant, metavar="ISO", help="before this instant")
    show.add_argument("--json", action="store_true", help="the records as JSON lines")
    show.add_argument("--file", type=Path, help="default: the configured trail")
    show.set_defaults(run=show_command)


def verify_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 only if every line is a record in its one form, chained to the one before
    it, and the head agrees.

    A live trail is checked as it stood when its head was read: records appended while
    the check runs are left for the next one.
    """
    path: Path = args.file or settings.audit_path
    sink = FileSink(path)
    if not path.is_file() and not sink.head_path.is_file():
        raise ValueError(f"no audit trail at {path}")
    try:
        snapshot = sink.snapshot()
    except DamagedHeadError as error:
        print(f"BROKEN: {error}")
        return 1
    limit = snapshot.length if snapshot.mismatch is None else None
    verdict = verify(_lines(path, limit))
    if not verdict.ok:
        print(f"BROKEN at record {verdict.broken_at}{_identify(path, verdict)}: {verdict.reason}")
        return 1
    problem = _head_problem(sink, snapshot, verdict)
    if problem:
        print(f"BROKEN: {problem}")
        return 1
    print(f"OK: {verdict.records} records, last hash {verdict.last_hash}")
    return 0


def show_command(settings: Settings, args: argparse.Namespace) -> int:
    """Print the matching records as a table, or as the JSON lines they are stored as.

    Either way a control or bidi character in a record (a trail written before values
    were stored escaped, or edited by hand) is printed as an escape: it cannot paint the
    terminal or start a row of its own.
    """
    path: Path = args.file or settings.audit_path
    if not path.is_file():
        raise ValueError(f"no audit trail at {path}")
    if not args.json:
        print(_row({name: name for name, _ in COLUMNS}))
    for line, record in _records(path):
        if _matches(record, args):
            print(visible_json(line.decode().rstrip("\n")) if args.json else _row(_cells(record)))
    return 0


def _lines(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """The file's lines (its first ``limit`` bytes), split on ``\\n`` only, so line numbers
    are the records' numbers."""
    if not path.is_file():
        return
    with path.open("rb") as handle:
        for line in handle:
            if limit is not None:
                if limit <= 0:
                    return
                limit -= len(line)
            yield line


def _identify(path: Path, verdict: Verdict) -> str:
    """`` (requestId …, time …)`` of the broken record when it still parses."""
    if verdict.broken_at is None:
        return ""
    line = next(islice(_lines(path), verdict.broken_at - 1, None), b"")
    try:
        record = json.loads(line)
        return f" (requestId {record['requestId']}, time {record['time']})"
    except (ValueError, TypeError, KeyError):
        return ""


def _head_problem(sink: FileSink, snapshot: Snapshot, verdict: Verdict) -> str | None:
    """Why the head disagrees with the chain: records cut from the end, or added behind it.

    Without a head file (a trail copied without it) a cut cannot be seen: warn, don't fail.
    """
    head = snapshot.head
    if head is None:
        if verdict.records:
            print(
                f"WARNING: no head file {sink.head_path}; records cut from the end "
                "cannot be detected",
                file=sys.stderr,
            )
        return None
    if head.records != verdict.records:
        return f"the head names {head.records} records but the trail holds {verdict.records}"
    if head.last_hash != verdict.last_hash:
        return (
            f"the head names last hash {head.last_hash} but the trail ends with {verdict.last_hash}"
        )
    return snapshot.mismatch


def _records(path: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Each line that is a JSON object, with its record; others are skipped with a warning."""
    for number, line in enumerate(_lines(path), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            yield line, record
        else:
            print(f"WARNING: line {number} is not a record; skipped", file=sys.stderr)


def _matches(record: dict[str, Any], args: argparse.Namespace) -> bool:
    """True when the record passes every filter given; ids compare in normal form."""
    if args.study and _normal(record.get("studyId")) != args.study:
        return False
    if args.job and _normal(record.get("jobId")) != args.job:
        return False
    if args.subject is not None and record.get("subject") != args.subject:
        return False
    if args.since or args.until:
        at = _time_of(record)
        if at is None or (args.since and at < args.since) or (args.until and at >= args.until):
            return False
    return True


def _normal(value: object) -> str | None:
    """A recorded id in normal form; a refused request may have recorded a malformed one."""
    if not isinstance(value, str):
        return None
    try:
        return normalise_guid(value)
    except ValueError:
        return value


def _time_of(record: dict[str, Any]) -> datetime | None:
    try:
        return parse_instant(str(record.get("time")))
    except ValueError:
        return None


def _cells(record: dict[str, Any]) -> dict[str, str]:
    """The table's columns for one record; a missing value is ``-``."""
    values = {
        "time": record.get("time"),
        "event": record.get("event"),
        "status": record.get("status"),
        "subject": record.get("subject"),
        "job": record.get("jobId"),
        "study": record.get("studyId"),
        "mode": record.get("mode"),
        "bytes": record.get("bytesSent"),
        "complete": record.get("complete"),
    }
    return {name: _text(value) for name, value in values.items()}


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return visible(str(value))


def _row(cells: dict[str, str]) -> str:
    """One fixed-width line; a value too long for its column is cut and ends in ``…``."""
    parts = []
    for name, width in COLUMNS:
        text = cells[name]
        if len(text) > width:
            text = text[: width - 1] + "…"
        parts.append(text.rjust(width) if name == "bytes" else text.ljust(width))
    return " ".join(parts).rstrip()


def _guid(text: str) -> str:
    try:
        return normalise_guid(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} {GUID_RULE}") from None


def _instant(text: str) -> datetime:
    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date-time") from None
