"""``reporting-svc audit verify`` and ``audit show``: check the chain, read the records;
``audit upgrade``, the audit database's deploy step.

Both read the file line by line (or the database in pages, with the ``postgres`` sink),
so a trail of any size needs constant memory. ``verify``
is what an inspector runs; its exit status and first line are the answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..ids import GUID_RULE, normalise_guid
from ..settings import Settings
from ..storage.record import given_instant, parse_instant
from ..text import visible, visible_json
from .chain import GENESIS, Verdict
from .database import DatabaseSink, chains, rows_of
from .imports import add_import_arguments
from .repair import add_repair_arguments
from .roles import add_grant_arguments
from .tables import LIVE
from .verification import check_database, check_file, file_lines

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
    """Give the ``audit`` subcommand its own: ``verify``, ``repair``, ``show``, ``import``,
    ``grant`` and ``upgrade``."""
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = commands.add_parser("verify", help="check the hash chain and the head file")
    check.add_argument("file", nargs="?", type=Path, help="default: the configured trail")
    check.add_argument(
        "--accept-unvouched",
        action="store_true",
        help="check the chain of a copy FILE without its head file (with a warning)",
    )
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

    load = commands.add_parser("import", help="load a host's JSON Lines trail into the database")
    add_import_arguments(load)

    grant = commands.add_parser("grant", help="let a database role insert and read audit rows")
    add_grant_arguments(grant)

    upgrade = commands.add_parser(
        "upgrade", help="bring the audit database's schema to this version's; rows stay"
    )
    upgrade.set_defaults(run=upgrade_command)


def upgrade_command(settings: Settings, args: argparse.Namespace) -> int:
    """Create or upgrade the audit tables, as their owner, before the hosts start."""
    if "postgres" not in settings.audit_sink:
        raise ValueError("audit upgrade is for the audit database: set the sink to postgres")
    before, after = DatabaseSink(settings.audit_database_url).upgrade()
    was = "already" if before == after else f"(was {before or 'empty'})"
    print(f"OK: the audit database is at revision {after} {was}")
    return 0


def verify_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 only if every line is a record in its one form, chained to the one before
    it, and the head agrees; with the database sink (and no FILE), the same of every
    chain the database holds, each imported one as its import record names it.

    A live trail is checked as it stood when its head was read (a file) or when the
    check began (the database): records appended while it runs are left for the next one.
    A trail without its head fails; only a copy named by FILE may be accepted without it.
    """
    if args.accept_unvouched and _is_configured(args.file, settings):
        raise ValueError("--accept-unvouched is for a copy named by FILE, not the configured trail")
    if args.file is None and "postgres" in settings.audit_sink:
        outcomes = check_database(DatabaseSink(settings.audit_database_url))
    else:
        path = args.file or settings.audit_path
        outcomes = [check_file(path, accept_unvouched=args.accept_unvouched)]
    failed = [outcome.problem for outcome in outcomes if outcome.problem]
    if failed:
        print(failed[0])
        return 1
    live = next((o.verdict for o in outcomes if o.chain == LIVE), Verdict(0, GENESIS))
    print(f"OK: {live.records} records, last hash {live.last_hash}")
    for outcome in outcomes:
        if outcome.chain != LIVE:
            verdict = outcome.verdict
            print(
                f"imported chain {outcome.chain}: {verdict.records} records, "
                f"last hash {verdict.last_hash}"
            )
    return 0


def _is_configured(file: Path | None, settings: Settings) -> bool:
    """True when FILE is absent or names the configured trail: its head must be there."""
    return file is None or file.resolve() == settings.audit_path.resolve()


def show_command(settings: Settings, args: argparse.Namespace) -> int:
    """Print the matching records as a table, or as the JSON lines they are stored as.

    Either way a control or bidi character in a record (a trail written before values
    were stored escaped, or edited by hand) is printed as an escape: it cannot paint the
    terminal or start a row of its own. With the database sink (and no ``--file``) the
    records are read from the database, imported chains first, in one snapshot.
    """
    if args.file is None and "postgres" in settings.audit_sink:
        lines = _database_lines(DatabaseSink(settings.audit_database_url))
    else:
        path: Path = args.file or settings.audit_path
        if not path.is_file():
            raise ValueError(f"no audit trail at {path}")
        lines = file_lines(path)
    if not args.json:
        print(_row({name: name for name, _ in COLUMNS}))
    for line, record in _records(lines):
        if _matches(record, args):
            print(visible_json(line.decode().rstrip("\n")) if args.json else _row(_cells(record)))
    return 0


def _database_lines(sink: DatabaseSink) -> Iterator[bytes]:
    with sink.snapshot() as connection:
        for chain in chains(connection):
            for row in rows_of(connection, chain):
                yield row.line.encode()


def _records(lines: Iterator[bytes]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Each line that is a JSON object, with its record; others are skipped with a warning."""
    for number, line in enumerate(lines, start=1):
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
    """An instant typed on the command line: with its zone, as publish and the API take it."""
    try:
        return given_instant(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} {error}") from None
