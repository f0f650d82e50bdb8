"""``reporting-svc audit repair``: put a trail that no longer matches its head back in service.

The file sink takes no record while the trail does not end where its head says and no
writer's crash explains it (lines added or cut by hand, a head lost or damaged, a power
cut mid-batch). Only an operator may decide what the trail is then: this
command shows what it would keep, adopt and cut, asks, keeps the cut bytes in a file
beside the trail, rewrites the head, and puts a ``repair`` record naming the operator
on the chain, so the repair is itself on record.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..settings import Settings
from ..storage.record import now_instant
from .chain import GENESIS, line_of, seal, verify_from
from .sinks import Crashed, DamagedHeadError, FileSink, Head, TrailMismatchError, write_head

USER_AGENT = "reporting-svc audit repair"


@dataclass(frozen=True)
class Plan:
    """What the trail holds and what a repair would make of it, as read at one moment."""

    length: int
    head: Head | None
    head_state: str
    records: int
    last_hash: str
    size: int
    head_found: bool
    reason: str

    @property
    def adopted(self) -> int:
        """Whole chained records past a head that the chain confirms up to its end."""
        return self.records - self.head.records if self.head and self.head_found else 0

    @property
    def cut(self) -> int:
        return self.length - self.size

    @property
    def needed(self) -> bool:
        if self.head is None and self.head_state == "missing":
            return self.length > 0
        return self.cut > 0 or self.adopted > 0 or not self.head_found

    def describe(self, path: Path) -> list[str]:
        """The lines shown to the operator before they decide."""
        lines = [
            f"{path}: {self.length} bytes; the first {self.records} record(s) "
            f"({self.size} bytes) chain from the genesis, last hash {self.last_hash}",
            f"head: {self.head_state}",
        ]
        if self.head and not self.head_found:
            lines.append(
                f"the chain does not reach the head's record {self.head.records} with its "
                f"hash: {max(self.head.records - self.records, 0)} record(s) it names are gone"
            )
        if self.adopted:
            lines.append(
                f"adopt {self.adopted} whole chained record(s) written past the head "
                f"(records {self.head.records + 1 if self.head else 1}-{self.records})"
            )
        if self.cut:
            lines.append(
                f"cut {self.cut} byte(s) from record {self.records + 1} on ({self.reason}), "
                "keeping them in a file beside the trail"
            )
            if self.head and self.size < self.head.size:
                lines.append("WARNING: the cut starts inside what the head vouched for")
        return lines

    def summary(self, cut_to: Path | None) -> str:
        """What the repair record says was done (its ``reportName``)."""
        parts = [f"audit repair: kept {self.records} record(s)"]
        if self.head is None:
            parts.append(f"head was {self.head_state}")
        elif not self.head_found:
            parts.append(f"head named {self.head.records} record(s) the chain does not reach")
        if self.adopted:
            parts.append(f"adopted {self.adopted} record(s) past the head")
        if cut_to is not None:
            parts.append(f"cut {self.cut} byte(s), kept in {cut_to.name}")
        return "; ".join(parts)


def add_repair_arguments(repair: argparse.ArgumentParser) -> None:
    """``audit repair [--file F] --by OPERATOR [--yes]``."""
    repair.add_argument("--file", type=Path, help="default: the configured trail")
    repair.add_argument("--by", required=True, metavar="OPERATOR", help="who repairs (recorded)")
    repair.add_argument("--yes", action="store_true", help="do not ask (needed without a tty)")
    repair.set_defaults(run=repair_command)


def repair_command(settings: Settings, args: argparse.Namespace) -> int:
    """Show the plan; on confirmation cut, adopt, rewrite the head and record the repair."""
    operator = args.by.strip()
    if not operator:
        raise ValueError("--by must name the operator who repairs the trail")
    sink = FileSink(args.file or settings.audit_path)
    if not sink.path.is_file() and not sink.head_path.is_file():
        raise ValueError(f"no audit trail at {sink.path}")
    crashed = _settled(sink)
    if crashed is not None:
        print(f"settled {crashed.describe()}, as the next append would")
    plan = read_plan(sink)
    for line in plan.describe(sink.path):
        print(line)
    if not plan.needed:
        print("nothing to repair: the trail ends where its head says")
        return 0
    if not args.yes and not _confirmed():
        print("not repaired")
        return 1
    cut_to = apply(sink, plan, operator)
    if cut_to is not None:
        print(f"cut bytes kept in {cut_to}")
    print(f"repaired: the trail holds {plan.records + 1} record(s), the last one the repair's")
    return 0


def _settled(sink: FileSink) -> Crashed | None:
    """A batch a crashed writer left, settled first: that needs no operator's decision."""
    try:
        return sink.settle()
    except (TrailMismatchError, DamagedHeadError):
        return None


def read_plan(sink: FileSink) -> Plan:
    """Walk the trail from the genesis: how far it chains, and where the head stands in it."""
    head, head_state = _head_of(sink)
    records, last_hash, size, reason = 0, GENESIS, 0, ""
    head_found = head is not None and head.records == 0 and head.size == 0
    for line in _lines(sink.path):
        verdict = verify_from([line], last_hash)
        if not verdict.ok:
            reason = verdict.reason if line.endswith(b"\n") else "a torn last line"
            break
        records, last_hash, size = records + 1, verdict.last_hash, size + len(line)
        if head is not None and (records, last_hash, size) == head:
            head_found = True
    length = sink.path.stat().st_size if sink.path.is_file() else 0
    return Plan(length, head, head_state, records, last_hash, size, head_found, reason)


def apply(sink: FileSink, shown: Plan, operator: str) -> Path | None:
    """Carry out the plan the operator saw, under the trail's lock, if it still holds."""
    fd = os.open(sink.path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if read_plan(sink) != shown:
            raise ValueError("the trail changed since it was read; run the repair again")
        cut_to = _keep_cut(sink, fd, shown) if shown.cut else None
        os.ftruncate(fd, shown.size)
        record = seal(
            {
                "time": now_instant(),
                "event": "repair",
                "requestId": uuid.uuid4().hex,
                "subject": operator,
                "userAgent": USER_AGENT,
                "reportName": shown.summary(cut_to),
            },
            shown.last_hash,
        )
        line = line_of(record)
        os.pwrite(fd, line, shown.size)
        os.fsync(fd)
        _rewrite_head(sink, Head(shown.records + 1, record["hash"], shown.size + len(line)))
        return cut_to
    finally:
        os.close(fd)


def _keep_cut(sink: FileSink, fd: int, plan: Plan) -> Path:
    """Copy the bytes about to be cut into ``<trail>.cut-<UTC time>``, on disk first."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    cut_to = sink.path.with_name(f"{sink.path.name}.cut-{stamp}")
    out = os.open(cut_to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(out, os.pread(fd, plan.cut, plan.size))
        os.fsync(out)
    finally:
        os.close(out)
    return cut_to


def _rewrite_head(sink: FileSink, head: Head) -> None:
    fd = os.open(sink.head_path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        write_head(fd, head, replaces=os.fstat(fd).st_size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _head_of(sink: FileSink) -> tuple[Head | None, str]:
    """The head and how it reads: sound (with what it names), missing or damaged."""
    if not sink.head_path.is_file():
        return None, "missing"
    try:
        head = sink.head()
    except DamagedHeadError:
        return None, "damaged"
    return head, f"names {head.records} record(s), {head.size} bytes, last hash {head.last_hash}"


def _lines(path: Path) -> Iterator[bytes]:
    if not path.is_file():
        return
    with path.open("rb") as handle:
        yield from handle


def _confirmed() -> bool:
    """The operator's yes at a terminal; without one there is nobody to ask."""
    if not sys.stdin.isatty():
        raise ValueError("stdin is not a terminal: pass --yes to repair without being asked")
    return input("Repair the trail as shown? [y/N] ").strip().lower() in ("y", "yes")
