"""A writer of the file trail that dies or fails mid-append costs no operator: the next
writer settles what a killed one left, and a failed one takes its own bytes back; bytes
that match no writer's intent are still refused."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.audit import sinks
from reporting_svc.audit.chain import line_of, seal, verify
from reporting_svc.audit.sinks import FileSink, RecordNotWrittenError

BEFORE = 3
# A writer SIGKILLed at one moment of its append: a real kill, at exactly that moment.
KILLED = """
import os, signal, sys
from pathlib import Path
from reporting_svc.audit import sinks

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_write = os.write

def half_then_killed(fd, data):  # the kill lands inside the batch's write
    real_write(fd, data[: len(data) // 2])
    killed()

if sys.argv[2] == "before-its-head":
    sinks.write_head = killed
else:
    sinks.os.write = half_then_killed
batch = [{"event": "start", "requestId": f"killed-{n}"} for n in range(3)]
sinks.FileSink(Path(sys.argv[1]), fsync=False)._append_all(batch, True, lambda: None)
"""


@pytest.fixture
def sink(tmp_path: Path) -> FileSink:
    """The test app's trail, holding BEFORE records."""
    trail = FileSink(tmp_path / "var" / "audit.jsonl", fsync=False)
    for number in range(BEFORE):
        trail.append({"event": "refused", "requestId": f"before-{number}", "status": 401})
    return trail


def kill_a_writer(sink: FileSink, moment: str) -> None:
    """Run a writer in a process of its own and SIGKILL it at ``moment`` of its append."""
    ran = subprocess.run(  # this interpreter, a fixed script
        [sys.executable, "-c", KILLED, str(sink.path), moment], timeout=60, check=False
    )
    assert ran.returncode == -signal.SIGKILL


def request_ids(sink: FileSink) -> list[str]:
    return [json.loads(line)["requestId"] for line in sink.path.read_bytes().splitlines()]


def chain_holds(sink: FileSink) -> bool:
    verdict = verify(sink.path.read_bytes().splitlines(keepends=True))
    return verdict.ok and (verdict.records, verdict.last_hash, sink.path.stat().st_size) == (
        sink.head()
    )


@pytest.mark.parametrize(
    ("moment", "kept"),
    [("before-its-head", ["killed-0", "killed-1", "killed-2"]), ("inside-its-write", [])],
)
def test_a_batch_a_killed_writer_left_is_settled_by_the_next_writer_without_an_operator(
    sink: FileSink, audit_command: Any, moment: str, kept: list[str]
) -> None:
    kill_a_writer(sink, moment)
    assert sink.path.stat().st_size != sink.head().size  # what needed an operator before

    assert sink.check() is None
    code, out, err = audit_command("verify")
    assert (code, out.startswith("OK: ")) == (0, True), (out, err)
    assert "written by a writer that died" in err or "torn by a writer that died" in err
    sink.append({"event": "start", "requestId": "after"})

    assert request_ids(sink) == [f"before-{n}" for n in range(BEFORE)] + kept + ["after"]
    assert chain_holds(sink)
    assert audit_command("verify")[0] == 0


def test_repair_settles_a_killed_writers_batch_and_finds_nothing_else_to_repair(
    sink: FileSink, audit_command: Any
) -> None:
    kill_a_writer(sink, "before-its-head")

    code, out, _ = audit_command("repair", "--by", "olivia", "--yes")

    assert code == 0
    assert "settled records 4-6, written by a writer that died before its head" in out
    assert "nothing to repair" in out
    assert "repair" not in [
        json.loads(line)["event"] for line in sink.path.read_bytes().splitlines()
    ]
    assert chain_holds(sink)


def forged_line(sink: FileSink, request_id: str) -> bytes:
    last = json.loads(sink.path.read_bytes().splitlines()[-1])["hash"]
    return line_of(seal({"event": "start", "requestId": request_id}, last))


def swap_the_last_record(sink: FileSink) -> None:
    """The crashed batch's last record replaced by a forged one of the same length."""
    lines = sink.path.read_bytes().splitlines(keepends=True)
    prev = json.loads(lines[-1])["prev"]
    forged = line_of(seal({"event": "start", "requestId": "killed-X"}, prev))
    sink.path.write_bytes(b"".join(lines[:-1]) + forged)


def append_bytes(data: Callable[[FileSink], bytes]) -> Callable[[FileSink], None]:
    def append(sink: FileSink) -> None:
        added = data(sink)
        with sink.path.open("ab") as trail:
            trail.write(added)

    return append


FORGERIES = {
    "a-line-past-the-crashed-batch": append_bytes(lambda sink: forged_line(sink, "forged")),
    "the-crashed-batchs-last-record-swapped": swap_the_last_record,
    "half-a-line-past-the-crashed-batch": append_bytes(lambda sink: b'{"time":"2024-05-01'),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_bytes_that_match_no_writers_intent_are_still_refused_until_repaired(
    sink: FileSink, audit_command: Any, forge: Callable[[FileSink], None]
) -> None:
    kill_a_writer(sink, "before-its-head")
    forge(sink)
    before = sink.path.read_bytes()

    with pytest.raises(RecordNotWrittenError, match="audit repair"):
        sink.append({"requestId": "after"})

    assert sink.path.read_bytes() == before
    assert "does not match its head" in (sink.check() or "")
    assert audit_command("verify")[0] == 1


def test_a_line_behind_the_head_with_no_batch_under_way_is_refused(sink: FileSink) -> None:
    """The last batch's intent (from the head before it) vouches for nothing past its head."""
    append_bytes(lambda sink: forged_line(sink, "forged"))(sink)

    with pytest.raises(RecordNotWrittenError, match="audit repair"):
        sink.append({"requestId": "after"})


def enospc_after(part: Callable[[bytes], bytes]) -> Callable[[int, bytes], int]:
    """A write that puts ``part`` of the data on disk, then finds the disk full."""
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        real_write(fd, part(data))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return write


def short_write(fd: int, data: bytes, real_write: Callable[[int, bytes], int] = os.write) -> int:
    """A write that puts all but the last bytes on disk and says so, as a full disk does."""
    return real_write(fd, data[:-7])


FAILED_WRITES = {
    "enospc-after-half": enospc_after(lambda data: data[: len(data) // 2]),
    "enospc-after-one-byte": enospc_after(lambda data: data[:1]),
    "short-write": short_write,
}


@pytest.mark.parametrize("failing", FAILED_WRITES.values(), ids=FAILED_WRITES.keys())
def test_a_writer_whose_append_fails_takes_its_bytes_back_so_the_next_append_succeeds(
    sink: FileSink, monkeypatch: pytest.MonkeyPatch, failing: Callable[[int, bytes], int]
) -> None:
    before, head = sink.path.read_bytes(), sink.head()
    monkeypatch.setattr(os, "write", failing)

    with pytest.raises(RecordNotWrittenError, match=r"No space left|short write"):
        sink.append({"event": "start", "requestId": "disk-full"})

    monkeypatch.undo()  # space freed
    assert (sink.path.read_bytes(), sink.head()) == (before, head)
    assert sink.check() is None
    sink.append({"event": "start", "requestId": "space-again"})
    assert request_ids(sink)[-2:] == [f"before-{BEFORE - 1}", "space-again"]
    assert chain_holds(sink)


def test_a_head_rewrite_that_fails_takes_the_batch_back_too(
    sink: FileSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, head = sink.path.read_bytes(), sink.head()

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sinks, "write_head", full)

    with pytest.raises(RecordNotWrittenError, match="No space left"):
        sink.append({"event": "start", "requestId": "disk-full"})

    assert (sink.path.read_bytes(), sink.head()) == (before, head)
