"""Checking a trail, file or database, without printing: what ``audit verify`` reports and
what ``audit import`` demands before it loads a file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from .chain import Verdict, verify
from .database import DatabaseSink, chains, head_problem, rows_of, verify_rows
from .imported import import_records, unaccounted
from .sinks import DamagedHeadError, FileSink, Snapshot
from .tables import LIVE

#: A trail with records and no head: nothing shows records cut from its end.
UNVOUCHED = "no head file {head}: records cut from the end of the trail cannot be seen"


@dataclass(frozen=True)
class Outcome:
    """One chain checked: its name, its verdict, why it fails (None: it holds), and
    whether a head vouched for its end."""

    chain: str
    verdict: Verdict
    problem: str | None = None
    length: int | None = None
    vouched: bool = True


def check_file(path: Path, *, accept_unvouched: bool = False) -> Outcome:
    """The file trail as it stood when its head was read: chain, then head.

    ``length`` is how much of the file was checked (records appended meanwhile are left
    for the next check). A trail with records and no head fails unless
    ``accept_unvouched`` (a copy the operator takes as it is): then it holds if its chain
    does, with a warning, and the outcome says it is unvouched.
    """
    sink = FileSink(path)
    if not path.is_file() and not sink.head_path.is_file():
        raise ValueError(f"no audit trail at {path}")
    try:
        snapshot = sink.snapshot()
    except DamagedHeadError as error:
        return Outcome(LIVE, Verdict(0, ""), f"BROKEN: {error}")
    if snapshot.crashed is not None:
        print(f"NOTE: the next append settles {snapshot.crashed.describe()}", file=sys.stderr)
    limit = snapshot.length if snapshot.mismatch is None else None
    verdict = verify(file_lines(path, limit))
    if not verdict.ok:
        line = next(islice(file_lines(path), (verdict.broken_at or 1) - 1, None), b"")
        broken = f"BROKEN at record {verdict.broken_at}{identity(line)}: {verdict.reason}"
        return Outcome(LIVE, verdict, broken)
    if snapshot.head is None and verdict.records:
        unvouched = UNVOUCHED.format(head=sink.head_path)
        if not accept_unvouched:
            return Outcome(LIVE, verdict, f"BROKEN: {unvouched}", limit, vouched=False)
        print(f"WARNING: {unvouched} (accepted: --accept-unvouched)", file=sys.stderr)
        return Outcome(LIVE, verdict, None, limit, vouched=False)
    problem = _file_head_problem(snapshot, verdict)
    return Outcome(LIVE, verdict, f"BROKEN: {problem}" if problem else None, limit)


def check_database(sink: DatabaseSink) -> list[Outcome]:
    """Every chain of the database in one snapshot, imported ones first, then whether the
    live chain's import records account for every other chain; stops at the first that
    fails. Writers are not held up: the snapshot takes no lock."""
    outcomes: list[Outcome] = []
    with sink.snapshot() as connection:
        for chain in chains(connection):
            where = "" if chain == LIVE else f" of chain {chain}"
            verdict, broken = verify_rows(rows_of(connection, chain))
            if broken is not None:
                text = (
                    f"BROKEN at record {verdict.broken_at}{where}{identity(broken.line.encode())}"
                )
                return [*outcomes, Outcome(chain, verdict, f"{text}: {verdict.reason}")]
            problem = head_problem(connection, chain, verdict)
            outcomes.append(
                Outcome(chain, verdict, f"BROKEN{where}: {problem}" if problem else None)
            )
            if problem:
                return outcomes
        imported = {o.chain: o.verdict for o in outcomes if o.chain != LIVE}
        problem = unaccounted(import_records(connection), imported)
    if problem:
        outcomes.append(Outcome(LIVE, outcomes[-1].verdict, f"BROKEN: {problem}"))
    return outcomes


def file_lines(path: Path, limit: int | None = None) -> Iterator[bytes]:
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


def identity(line: bytes) -> str:
    """`` (requestId …, time …)`` of a broken record when its line still parses."""
    try:
        record = json.loads(line)
        return f" (requestId {record['requestId']}, time {record['time']})"
    except (ValueError, TypeError, KeyError):
        return ""


def _file_head_problem(snapshot: Snapshot, verdict: Verdict) -> str | None:
    """Why the head disagrees with the chain: records cut from the end, or added behind it."""
    head = snapshot.head
    if head is None:
        return None
    if head.records != verdict.records:
        return f"the head names {head.records} records but the trail holds {verdict.records}"
    if head.last_hash != verdict.last_hash:
        return (
            f"the head names last hash {head.last_hash} but the trail ends with {verdict.last_hash}"
        )
    return snapshot.mismatch
