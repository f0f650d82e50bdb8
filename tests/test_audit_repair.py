"""``reporting-svc audit repair``: what it shows, what it asks, and the trail it leaves."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.audit.chain import line_of, seal
from reporting_svc.audit.sinks import FileSink

RECORDS = 4
TORN = b'{"time":"2024-05-01T10:00:00.000Z","event":"sta'


@pytest.fixture
def sink(tmp_path: Path) -> FileSink:
    """The default trail of the test's var dir, holding RECORDS records."""
    trail = FileSink(tmp_path / "var" / "audit.jsonl", fsync=False)
    for number in range(RECORDS):
        trail.append({"event": "refused", "requestId": f"before-{number}", "status": 401})
    return trail


class Terminal(io.StringIO):
    """A stdin that is a terminal, answering the prompt with ``answer`` after ``meanwhile``."""

    def __init__(self, answer: str, meanwhile: Callable[[], None] = lambda: None):
        super().__init__(answer + "\n")
        self.meanwhile = meanwhile

    def isatty(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        self.meanwhile()
        return super().readline(size)


def chained_line(sink: FileSink, request_id: str) -> bytes:
    last = json.loads(sink.path.read_bytes().splitlines()[-1])["hash"]
    return line_of(seal({"event": "start", "requestId": request_id}, last))


def append_bytes(sink: FileSink, data: bytes) -> None:
    with sink.path.open("ab") as trail:
        trail.write(data)


def records_of(sink: FileSink) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.path.read_bytes().splitlines()]


def cut_files(sink: FileSink) -> list[Path]:
    return sorted(sink.path.parent.glob(f"{sink.path.name}.cut-*"))


def test_repair_cuts_a_torn_tail_keeps_it_beside_the_trail_and_records_the_repair(
    sink: FileSink, audit_command: Any
) -> None:
    append_bytes(sink, TORN)

    code, out, _ = audit_command("repair", "--by", "olivia", "--yes")

    assert code == 0
    assert f"cut {len(TORN)} byte(s) from record {RECORDS + 1} on (a torn last line)" in out
    [cut] = cut_files(sink)
    assert cut.read_bytes() == TORN
    assert f"cut bytes kept in {cut}" in out
    repair = records_of(sink)[-1]
    assert (repair["event"], repair["subject"]) == ("repair", "olivia")
    assert repair["reportName"] == (
        f"audit repair: kept {RECORDS} record(s); cut {len(TORN)} byte(s), kept in {cut.name}"
    )
    assert sink.head().records == RECORDS + 1
    assert audit_command("verify")[0] == 0
    sink.append({"event": "refused", "requestId": "after"})  # the trail takes records again


def test_repair_adopts_whole_chained_records_past_the_head_only_when_told(
    sink: FileSink, audit_command: Any
) -> None:
    append_bytes(sink, chained_line(sink, "orphan"))

    code, out, _ = audit_command("repair", "--by", "olivia", "--yes")

    assert code == 0
    assert f"adopt 1 whole chained record(s) written past the head (records {RECORDS + 1}" in out
    assert [record["requestId"] for record in records_of(sink)][-2] == "orphan"
    assert records_of(sink)[-1]["reportName"].endswith("adopted 1 record(s) past the head")
    assert cut_files(sink) == []
    assert audit_command("verify")[0] == 0


def test_repair_of_records_cut_from_the_end_says_the_head_named_more(
    sink: FileSink, audit_command: Any
) -> None:
    sink.path.write_bytes(b"".join(sink.path.read_bytes().splitlines(keepends=True)[:-1]))

    code, out, _ = audit_command("repair", "--by", "olivia", "--yes")

    assert code == 0
    assert "1 record(s) it names are gone" in out
    assert records_of(sink)[-1]["reportName"] == (
        f"audit repair: kept {RECORDS - 1} record(s); "
        f"head named {RECORDS} record(s) the chain does not reach"
    )
    assert audit_command("verify")[0] == 0


@pytest.mark.parametrize(
    ("damage", "state"),
    [
        (lambda sink: sink.head_path.unlink(), "missing"),
        (lambda sink: sink.head_path.write_text('{"records": 1e400, "hash": "x"}'), "damaged"),
    ],
    ids=["missing", "damaged"],
)
def test_repair_of_a_lost_head_keeps_what_chains_and_says_what_the_head_was(
    sink: FileSink, audit_command: Any, damage: Any, state: str
) -> None:
    damage(sink)

    code, out, _ = audit_command("repair", "--by", "olivia", "--yes")

    assert code == 0
    assert f"head: {state}" in out
    assert records_of(sink)[-1]["reportName"] == (
        f"audit repair: kept {RECORDS} record(s); head was {state}"
    )
    assert sink.head().records == RECORDS + 1
    assert audit_command("verify")[0] == 0


def test_repair_without_a_terminal_and_without_yes_changes_nothing(
    sink: FileSink, audit_command: Any
) -> None:
    append_bytes(sink, TORN)
    before = sink.path.read_bytes(), sink.head_path.read_bytes()

    code, out, err = audit_command("repair", "--by", "olivia")

    assert code == 2
    assert f"cut {len(TORN)} byte(s)" in out
    assert "stdin is not a terminal: pass --yes" in err
    assert (sink.path.read_bytes(), sink.head_path.read_bytes()) == before
    assert cut_files(sink) == []


@pytest.mark.parametrize(("answer", "code", "repaired"), [("y", 0, True), ("n", 1, False)])
def test_repair_at_a_terminal_asks_and_does_what_the_operator_answers(
    sink: FileSink,
    audit_command: Any,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    repaired: bool,
) -> None:
    append_bytes(sink, TORN)
    monkeypatch.setattr("sys.stdin", Terminal(answer))

    assert audit_command("repair", "--by", "olivia")[0] == code

    trail = sink.path.read_bytes()
    assert (b'"event":"repair"' in trail) is repaired
    assert trail.endswith(TORN) is not repaired


def test_repair_refuses_when_the_trail_changed_while_the_operator_was_asked(
    sink: FileSink, audit_command: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_bytes(sink, TORN)
    monkeypatch.setattr("sys.stdin", Terminal("y", meanwhile=lambda: append_bytes(sink, b"x")))

    code, _, err = audit_command("repair", "--by", "olivia")

    assert code == 2
    assert "the trail changed since it was read" in err
    assert sink.path.read_bytes().endswith(TORN + b"x")


def test_repair_of_a_sound_trail_does_nothing(sink: FileSink, audit_command: Any) -> None:
    before = sink.path.read_bytes()

    code, out, _ = audit_command("repair", "--by", "olivia", "--yes")

    assert code == 0
    assert "nothing to repair" in out
    assert sink.path.read_bytes() == before


def test_repair_needs_an_operator_name(sink: FileSink, audit_command: Any) -> None:
    code, _, err = audit_command("repair", "--by", " ", "--yes")

    assert code == 2
    assert "--by must name the operator" in err
