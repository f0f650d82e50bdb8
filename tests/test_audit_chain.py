"""The hash chain: sealing, and verification that names the first record that breaks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.audit.chain import (
    GENESIS,
    NotCanonicalError,
    Verdict,
    canonical,
    line_of,
    parse_line,
    seal,
    verify,
)
from reporting_svc.audit.sinks import FileSink
from tests.support import STUDY

RECORDS = 10


def fields(number: int) -> dict[str, Any]:
    """A realistic ``end`` record's fields, different for every number."""
    return {
        "time": f"2024-05-01T10:00:{number:02d}.123Z",
        "event": "end",
        "requestId": f"request-{number}",
        "subject": "alice",
        "clientAddress": "203.0.113.7",
        "userAgent": "curl/8.5.0",
        "jobId": f"{number:032X}",
        "studyId": STUDY,
        "mode": "test",
        "reportName": "Subject Data Extract",
        "status": 206,
        "delivery": "stream",
        "bytesSent": 1000 + number,
        "complete": number % 2 == 0,
        "sha256": hashlib.sha256(str(number).encode()).hexdigest(),
    }


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """A trail of RECORDS sealed records written by the file sink, with its head file."""
    sink = FileSink(tmp_path / "var" / "audit.jsonl", fsync=False)
    for number in range(1, RECORDS + 1):
        sink.append(fields(number))
    return sink.path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_seal_adds_prev_and_the_sha256_of_everything_but_the_hash() -> None:
    record = seal(fields(1), GENESIS)

    assert record["prev"] == GENESIS
    assert record["hash"] == hashlib.sha256(canonical(record)).hexdigest()
    assert b'"hash"' not in canonical(record)
    assert json.loads(canonical(record)) == {**fields(1), "prev": GENESIS}


def test_seal_chains_each_record_to_the_hash_of_the_one_before() -> None:
    first = seal(fields(1), GENESIS)
    second = seal(fields(2), first["hash"])

    assert second["prev"] == first["hash"]
    assert verify([line_of(first), line_of(second)]).last_hash == second["hash"]


def test_untouched_trail_verifies_with_its_count_and_last_hash(trail: Path) -> None:
    verdict = verify(lines_of(trail))

    assert verdict.ok
    assert verdict.records == RECORDS
    assert verdict.last_hash == json.loads(lines_of(trail)[-1])["hash"]


def test_empty_trail_verifies_as_zero_records_ending_at_the_genesis() -> None:
    assert verify([]) == Verdict(0, GENESIS)


@pytest.mark.parametrize("record", [1, 4, RECORDS])
def test_changing_any_single_byte_of_a_record_breaks_the_chain_at_that_record(
    trail: Path, record: int
) -> None:
    lines = lines_of(trail)
    original = lines[record - 1]

    for position in range(len(original) - 1):  # every byte but the newline
        changed = bytearray(original)
        changed[position] ^= 0x01
        lines[record - 1] = bytes(changed)
        verdict = verify(lines)
        assert verdict.broken_at == record, f"byte {position} ({chr(original[position])!r})"
        assert verdict.records == record - 1


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b'"subject":"alice"', b'"subject":"alicf"', "hash does not match"),
        (b'"bytesSent":1004', b'"bytesSent":1005', "hash does not match"),
        (b'"complete":true', b'"complete":false', "hash does not match"),
        (b'"status":206', b'"status":200', "hash does not match"),
    ],
    ids=["inside-a-string", "inside-a-number", "a-boolean", "the-status"],
)
def test_a_plausible_edit_of_a_value_is_named_with_its_reason(
    trail: Path, old: bytes, new: bytes, reason: str
) -> None:
    lines = lines_of(trail)
    assert old in lines[3]
    lines[3] = lines[3].replace(old, new)

    verdict = verify(lines)

    assert verdict.broken_at == 4
    assert verdict.reason.startswith(reason)


def test_changing_a_byte_inside_the_hash_breaks_the_chain_at_that_record(trail: Path) -> None:
    lines = lines_of(trail)
    stored = json.loads(lines[5])["hash"]
    forged = stored[:10] + ("0" if stored[10] != "0" else "1") + stored[11:]
    lines[5] = lines[5].replace(stored.encode(), forged.encode())

    verdict = verify(lines)

    assert verdict.broken_at == 6
    assert verdict.reason == "hash does not match the record's content"


def test_a_record_resealed_after_an_edit_breaks_the_chain_at_the_next_record(
    trail: Path,
) -> None:
    lines = lines_of(trail)
    edited = json.loads(lines[3])
    edited["subject"] = "mallory"
    lines[3] = line_of(
        seal({k: v for k, v in edited.items() if k not in ("prev", "hash")}, edited["prev"])
    )

    verdict = verify(lines)

    assert verdict.broken_at == 5
    assert verdict.reason == "prev does not name the record before it"


def test_deleting_a_line_in_the_middle_breaks_the_chain_where_it_was(trail: Path) -> None:
    lines = lines_of(trail)
    del lines[4]

    verdict = verify(lines)

    assert verdict.broken_at == 5
    assert verdict.reason == "prev does not name the record before it"


def test_swapping_two_lines_breaks_the_chain_at_the_first_of_them(trail: Path) -> None:
    lines = lines_of(trail)
    lines[3], lines[4] = lines[4], lines[3]

    assert verify(lines).broken_at == 4


def test_a_line_appended_by_hand_breaks_the_chain_at_that_line(trail: Path) -> None:
    lines = lines_of(trail)
    lines.append(line_of(seal(fields(99), GENESIS)))

    verdict = verify(lines)

    assert verdict.broken_at == RECORDS + 1
    assert verdict.records == RECORDS


def test_a_copy_of_an_earlier_line_appended_breaks_the_chain_at_that_line(trail: Path) -> None:
    lines = lines_of(trail)
    lines.append(lines[2])

    assert verify(lines).broken_at == RECORDS + 1


def test_a_line_that_is_no_json_breaks_the_chain_at_that_line(trail: Path) -> None:
    lines = lines_of(trail)
    lines.insert(2, b"\n")

    verdict = verify(lines)

    assert verdict.broken_at == 3
    assert verdict.reason == "not a sealed JSON record"


def test_the_last_line_deleted_is_invisible_to_the_chain_alone(trail: Path) -> None:
    lines = lines_of(trail)[:-1]

    assert verify(lines).ok


def test_verify_command_detects_the_last_line_deleted_through_the_head_file(
    trail: Path, audit_command: Any
) -> None:
    trail.write_bytes(b"".join(lines_of(trail)[:-1]))

    code, out, _ = audit_command("verify", str(trail))

    assert code == 1
    assert f"the head names {RECORDS} records but the trail holds {RECORDS - 1}" in out


def test_verify_command_detects_a_correctly_chained_record_appended_behind_the_head(
    trail: Path, audit_command: Any
) -> None:
    last = json.loads(lines_of(trail)[-1])["hash"]
    with trail.open("ab") as handle:
        handle.write(line_of(seal(fields(99), last)))

    code, out, _ = audit_command("verify", str(trail))

    assert code == 1
    assert f"the head names {RECORDS} records but the trail holds {RECORDS + 1}" in out


def move_subject_to_the_end(line: bytes) -> bytes:
    """The same fields (the hash covers sorted keys, so it still holds) in another order."""
    return line.replace(b'"subject":"alice",', b"").replace(b"}\n", b',"subject":"alice"}\n')


RESPELLINGS = {
    "duplicate-key": lambda line: line.replace(
        b'"subject":"alice"', b'"subject":"mallory","subject":"alice"'
    ),
    "cr-before-newline": lambda line: line[:-1] + b"\r\n",
    "escaped-ascii-letter": lambda line: line.replace(b'"alice"', b'"\\u0061lice"'),
    "reordered-keys": move_subject_to_the_end,
    "space-after-colon": lambda line: line.replace(b'"subject":"alice"', b'"subject": "alice"'),
    "float-for-integer": lambda line: line.replace(b'"status":206', b'"status":206.0'),
    "no-newline": lambda line: line[:-1],
    "utf8-instead-of-escape": lambda line: line.replace(b'"alice"', b'"al\xc3\xafce"'),
}


@pytest.mark.parametrize("respell", RESPELLINGS.values(), ids=RESPELLINGS.keys())
def test_a_record_respelled_in_any_way_the_writer_does_not_write_breaks_verify(
    trail: Path, respell: Any, audit_command: Any
) -> None:
    lines = lines_of(trail)
    lines[3] = respell(lines[3])
    assert lines[3] != lines_of(trail)[3]
    trail.write_bytes(b"".join(lines))

    verdict = verify(lines)
    code, out, _ = audit_command("verify", str(trail))

    assert (verdict.broken_at, verdict.records) == (4, 3)
    assert code == 1
    assert out.startswith("BROKEN at record 4")


def test_the_writer_and_verify_share_one_form_so_every_line_the_sink_writes_parses(
    trail: Path,
) -> None:
    for line in lines_of(trail):
        assert line_of(parse_line(line)) == line


@pytest.mark.parametrize(
    "line",
    [b"[]\n", b"null\n", b'{"hash":"x"}\n', b"NaN\n", b"\xff\n"],
    ids=["array", "null", "too-few-fields", "nan", "not-utf8"],
)
def test_a_line_that_is_no_record_is_not_a_sealed_json_record(line: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="not a sealed JSON record"):
        parse_line(line)


def test_a_record_with_nan_is_not_in_the_one_form(trail: Path) -> None:
    line = lines_of(trail)[0].replace(b'"status":206', b'"status":NaN')

    with pytest.raises(NotCanonicalError, match="not in the one form"):
        parse_line(line)
