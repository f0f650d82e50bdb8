"""``reporting-svc audit import FILE``: move a host's JSON Lines trail into the database.

The file is verified first (chain and head, as ``audit verify FILE``) and refused unless
it holds. Its records keep their lines and hashes: re-sealing them onto the live chain
would change every hash, and anchors taken from the file (a last hash kept in a ticket)
would no longer be found. So they become a chain of their own, named
``import-<the first 12 digits of its last hash>`` unless ``--chain`` names it, with a head
naming its end, and in the same transaction an ``import`` record on the live chain names
the operator, the file, the count and the last hash: the live chain vouches for what was
loaded, and cutting the imported chain shows. A chain of that name cannot be loaded twice.

Only a file whose head vouches for its end is loaded: without the head, records cut from
the end cannot be seen, and the live chain would vouch for a truncated copy. An operator
who takes such a copy as it is says so with ``--accept-unvouched``, and the import record
says so too. Only the tables' owner can load a chain: the service's role may write the
live chain alone (``tables``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import sqlalchemy as sa

from ..settings import Settings
from .chain import parse_line
from .database import DatabaseSink, append_live, insert_chain, row_of
from .imported import import_record, statement
from .tables import LIVE, records
from .verification import check_file, file_lines

_CHAIN_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """``audit import FILE --by OPERATOR [--chain NAME] [--accept-unvouched]``."""
    parser.add_argument("file", type=Path, help="a JSON Lines trail (its .head beside it)")
    parser.add_argument("--by", required=True, metavar="OPERATOR", help="who imports (recorded)")
    parser.add_argument("--chain", metavar="NAME", help="default: import-<its last hash's start>")
    parser.add_argument(
        "--accept-unvouched",
        action="store_true",
        help="load a copy without its head file (recorded; a cut from its end cannot be seen)",
    )
    parser.set_defaults(run=import_command)


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    """Verify the file, then load it as a chain of its own and record the import."""
    if "postgres" not in settings.audit_sink:
        raise ValueError("audit import loads into the audit database: set the sink to postgres")
    operator = args.by.strip()
    if not operator:
        raise ValueError("--by must name the operator who imports the trail")
    path: Path = args.file
    outcome = check_file(path, accept_unvouched=args.accept_unvouched)
    if outcome.problem:
        print(outcome.problem)
        hint = "" if outcome.vouched else " (--accept-unvouched loads a copy without its head)"
        print(f"not imported: {path} does not verify{hint}")
        return 1
    verdict = outcome.verdict
    if not verdict.records:
        raise ValueError(f"{path} holds no records")
    chain = args.chain or f"import-{verdict.last_hash[:12]}"
    if chain == LIVE or not _CHAIN_NAME.fullmatch(chain):
        raise ValueError(f"--chain must be 1 to 64 of A-Z a-z 0-9 . _ : - and not {LIVE!r}")
    rows = (
        row_of(chain, seq, parse_line(line))
        for seq, line in enumerate(file_lines(path, outcome.length), start=1)
    )
    summary = statement(path.name, chain, verdict, vouched=outcome.vouched)
    with DatabaseSink(settings.audit_database_url).writing() as connection:
        taken = sa.select(records.c.seq).where(records.c.chain == chain).limit(1)
        if connection.scalar(taken) is not None:
            raise ValueError(f"the audit database holds a chain {chain} already")
        insert_chain(connection, chain, rows)
        record = import_record(operator, summary, vouched=outcome.vouched)
        [sealed] = append_live(connection, [record])
    print(f"OK: {summary}; recorded on the live chain as {sealed['hash']}")
    return 0
