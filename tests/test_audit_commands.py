"""``reporting-svc audit verify`` and ``audit show`` on trails written by the file sink."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.audit.sinks import FileSink
from tests.support import OTHER_STUDY, STUDY

JOB_A = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
JOB_B = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

ROWS = [
    ("2024-05-01T09:00:00.000Z", "start", 200, "alice", JOB_A, STUDY, None, None),
    ("2024-05-01T09:00:01.500Z", "end", 200, "alice", JOB_A, STUDY, 1234, True),
    ("2024-05-02T12:00:00.000Z", "refused", 401, None, JOB_B, None, None, None),
    ("2024-05-03T08:30:00.000Z", "head", 200, "bob", JOB_B, OTHER_STUDY, None, None),
    ("2024-05-04T00:00:00.000Z", "refused", 400, None, "../../etc/passwd", None, None, None),
]


@pytest.fixture
def trail(tmp_path: Path) -> FileSink:
    """The default trail of the test's var dir, holding ROWS."""
    sink = FileSink(tmp_path / "var" / "audit.jsonl", fsync=False)
    for number, (time, event, status, subject, job, study, sent, complete) in enumerate(ROWS):
        sink.append(
            {
                "time": time,
                "event": event,
                "requestId": f"req-{number}",
                "subject": subject,
                "jobId": job,
                "studyId": study,
                "mode": "test" if study else None,
                "status": status,
                "bytesSent": sent,
                "complete": complete,
            }
        )
    return sink


def shown_request_ids(out: str) -> list[str]:
    return [json.loads(line)["requestId"] for line in out.splitlines()]


def test_verify_reads_the_configured_trail_by_default_and_prints_count_and_last_hash(
    trail: FileSink, audit_command: Any
) -> None:
    code, out, err = audit_command("verify")

    assert code == 0
    assert out == f"OK: {len(ROWS)} records, last hash {trail.head()[1]}\n"
    assert err == ""


def test_verify_names_the_broken_record_by_line_request_id_and_time(
    trail: FileSink, audit_command: Any
) -> None:
    lines = trail.path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"status":401', b'"status":200')
    trail.path.write_bytes(b"".join(lines))

    code, out, _ = audit_command("verify", str(trail.path))

    assert code == 1
    assert out.strip() == (
        "BROKEN at record 3 (requestId req-2, time 2024-05-02T12:00:00.000Z): "
        "hash does not match the record's content"
    )


def test_verify_names_a_record_that_no_longer_parses_by_its_line_alone(
    trail: FileSink, audit_command: Any
) -> None:
    lines = trail.path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:40] + b"\n"
    trail.path.write_bytes(b"".join(lines))

    code, out, _ = audit_command("verify", str(trail.path))

    assert code == 1
    assert out.strip() == "BROKEN at record 2: not a sealed JSON record"


def test_verify_fails_when_the_head_names_another_last_hash(
    trail: FileSink, audit_command: Any
) -> None:
    size = trail.path.stat().st_size
    trail.head_path.write_text(json.dumps({"records": len(ROWS), "hash": "f" * 64, "size": size}))

    code, out, _ = audit_command("verify", str(trail.path))

    assert code == 1
    assert out.startswith(f"BROKEN: the head names last hash {'f' * 64}")


def test_verify_fails_when_the_head_file_is_damaged(trail: FileSink, audit_command: Any) -> None:
    trail.head_path.write_text("{}")

    code, out, _ = audit_command("verify", str(trail.path))

    assert code == 1
    assert out == f"BROKEN: the audit trail's head file {trail.head_path} is damaged\n"


def test_verify_fails_when_the_trail_is_gone_but_its_head_remains(
    trail: FileSink, audit_command: Any
) -> None:
    trail.path.unlink()

    code, out, _ = audit_command("verify", str(trail.path))

    assert code == 1
    assert f"the head names {len(ROWS)} records but the trail holds 0" in out


def test_verify_of_the_configured_trail_cut_and_without_its_head_fails(
    trail: FileSink, audit_command: Any
) -> None:
    lines = trail.path.read_bytes().splitlines(keepends=True)
    trail.path.write_bytes(b"".join(lines[:2]))
    trail.head_path.unlink()

    code, out, _ = audit_command("verify")
    accepted, _, err = audit_command("verify", "--accept-unvouched")

    assert code == 1
    assert out == (
        f"BROKEN: no head file {trail.head_path}: records cut from the end of the trail "
        "cannot be seen\n"
    )
    assert accepted == 2 and "--accept-unvouched is for a copy named by FILE" in err


def test_verify_of_a_copy_without_its_head_fails_unless_the_operator_accepts_it(
    trail: FileSink, audit_command: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(trail.path.read_bytes())

    refused = audit_command("verify", str(copy))
    code, out, err = audit_command("verify", str(copy), "--accept-unvouched")

    assert refused[0] == 1
    assert refused[1].startswith(f"BROKEN: no head file {copy}.head")
    assert code == 0
    assert out.startswith(f"OK: {len(ROWS)} records")
    assert err.startswith(f"WARNING: no head file {copy}.head")
    assert "(accepted: --accept-unvouched)" in err


def test_verify_of_a_trail_being_appended_to_checks_it_as_it_stood(
    trail: FileSink, audit_command: Any
) -> None:
    writer = FileSink(trail.path, fsync=False)  # another process's sink: its own descriptors
    appended = 2000

    def append() -> None:
        for _ in range(appended):
            writer.append({"event": "refused", "status": 401})

    appender = threading.Thread(target=append)
    appender.start()
    results = []
    while appender.is_alive():
        results.append(audit_command("verify", str(trail.path)))
    appender.join()
    results.append(audit_command("verify", str(trail.path)))

    assert [code for code, _, _ in results] == [0] * len(results)
    counts = [int(out.split()[1]) for _, out, _ in results]
    assert counts == sorted(counts)
    assert len(ROWS) <= counts[0] < counts[-1] == len(ROWS) + appended


def test_verify_of_a_missing_trail_is_an_error(audit_command: Any, tmp_path: Path) -> None:
    code, _, err = audit_command("verify", str(tmp_path / "nowhere.jsonl"))

    assert code == 2
    assert "no audit trail at" in err


def test_show_prints_a_fixed_width_table_with_a_header(trail: FileSink, audit_command: Any) -> None:
    code, out, _ = audit_command("show")

    header, *rows = out.splitlines()
    assert code == 0
    assert header.split() == [
        "time",
        "event",
        "status",
        "subject",
        "job",
        "study",
        "mode",
        "bytes",
        "complete",
    ]
    assert len(rows) == len(ROWS)
    assert rows[1].split() == [
        "2024-05-01T09:00:01.500Z",
        "end",
        "200",
        "alice",
        JOB_A,
        STUDY,
        "test",
        "1234",
        "true",
    ]
    assert rows[2].split()[3] == "-"
    for row, (_, event, status, *_) in zip(rows, ROWS, strict=True):
        assert row[header.index("event") :].startswith(f"{event} ")
        assert row[header.index("status") :].startswith(f"{status} ")


def test_show_json_prints_the_stored_lines_unchanged(trail: FileSink, audit_command: Any) -> None:
    code, out, _ = audit_command("show", "--json")

    assert code == 0
    assert out.encode() == trail.path.read_bytes()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--study", STUDY.lower()], ["req-0", "req-1"]),
        (["--study", "cfd8129a-430a-473c-8a02-f4ba5daad865"], ["req-0", "req-1"]),
        (["--job", JOB_B.lower()], ["req-2", "req-3"]),
        (["--subject", "bob"], ["req-3"]),
        (["--since", "2024-05-02T12:00:00Z"], ["req-2", "req-3", "req-4"]),
        (["--until", "2024-05-02T12:00:00Z"], ["req-0", "req-1"]),
        (["--since", "2024-05-01T10:00:00+01:00", "--until", "2024-05-01T00:00Z"], []),
        (["--since", "2024-05-01T09:00:01.000Z", "--until", "2024-05-03T00Z"], ["req-1", "req-2"]),
        (["--study", STUDY, "--subject", "bob"], []),
    ],
)
def test_show_keeps_only_records_matching_every_filter(
    trail: FileSink, audit_command: Any, filters: list[str], expected: list[str]
) -> None:
    code, out, _ = audit_command("show", "--json", *filters)

    assert code == 0
    assert shown_request_ids(out) == expected


@pytest.mark.parametrize("since", ["2024-05-01", "2024-05-01T10:00:00"])
def test_show_refuses_a_time_without_a_zone_as_publish_and_the_api_do(
    trail: FileSink, audit_command: Any, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        audit_command("show", "--since", since)

    assert exit_info.value.code == 2
    assert "zone" in capsys.readouterr().err


@pytest.mark.parametrize("options", [[], ["--json"]])
def test_show_to_a_reader_that_left_ends_quietly_with_141(
    trail: FileSink, audit_command: Any, monkeypatch: pytest.MonkeyPatch, options: list[str]
) -> None:
    """``audit show | head -1``: the status a shell gives a filter killed by SIGPIPE, no
    traceback, and nothing left for the interpreter to fail to flush at exit."""
    reader, writer = os.pipe()
    os.close(reader)
    monkeypatch.setattr(sys, "stdout", os.fdopen(writer, "w"))

    code, _, err = audit_command("show", *options)

    assert (code, err) == (141, "")
    sys.stdout.write("at exit\n")
    sys.stdout.flush()


def test_show_refuses_an_id_that_is_no_guid(trail: FileSink, audit_command: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        audit_command("show", "--job", "../../etc/passwd")

    assert exit_info.value.code == 2


def test_show_skips_a_line_that_is_no_record_with_a_warning(
    trail: FileSink, audit_command: Any
) -> None:
    with trail.path.open("ab") as handle:
        handle.write(b"garbage\n")

    code, out, err = audit_command("show", "--json")

    assert code == 0
    assert len(out.splitlines()) == len(ROWS)
    assert err == f"WARNING: line {len(ROWS) + 1} is not a record; skipped\n"


def _printable_lines(out: str) -> list[str]:
    """The lines ``str.splitlines`` sees, after checking none holds a control character."""
    lines = out.splitlines()
    assert all(line.isprintable() for line in lines), lines
    return lines


@pytest.mark.parametrize(
    ("sent", "field", "stored"),
    [
        pytest.param(
            {"query": "id=%1b%5b1A%1b%5b2Kforged"},
            "jobId",
            "\\x1b[1A\\x1b[2Kforged",
            id="cursor-moving-id",
        ),
        pytest.param(
            {"query": "id=%0a2099-01-01T00:00:00.000Z%20start%20200%20alice"},
            "jobId",
            "\\x0a2099-01-01T00:00:00.000Z start 200 alice",
            id="row-forging-id",
        ),
        pytest.param(
            {"query": "id=%e2%80%aeABC%e2%80%a8%c2%85"},
            "jobId",
            "\\u202eABC\\u2028\\x85",
            id="bidi-and-line-separator-id",
        ),
        pytest.param(
            {"subject": "al\x1b[2K\nice\u202e"},
            "subject",
            "al\\x1b[2K\\x0aice\\u202e",
            id="subject",
        ),
        pytest.param(
            {"user_agent": "curl\x1b]0;owned\x07\x85"},
            "userAgent",
            "curl\\x1b]0;owned\\x07\\x85",
            id="user-agent",
        ),
    ],
)
def test_hostile_request_text_is_stored_escaped_and_shown_as_one_printable_row(
    download: Any,
    token: Any,
    audit_records: Any,
    audit_command: Any,
    sent: dict[str, str],
    field: str,
    stored: str,
) -> None:
    bearer = (
        token(f"{STUDY}:test:REPORTING_VIEW", subject=sent["subject"])
        if "subject" in sent
        else None
    )
    headers = {"User-Agent": sent.get("user_agent", "pytest")}

    download(sent.get("query", f"id={JOB_A}"), bearer, headers=headers)

    (record,) = audit_records()
    assert record[field] == stored
    _, table, _ = audit_command("show")
    _, lines, _ = audit_command("show", "--json")
    assert len(_printable_lines(table)) == 2
    (line,) = _printable_lines(lines)
    assert json.loads(line)[field] == stored


def test_show_renders_control_characters_of_an_older_trail_visibly(
    audit_command: Any, tmp_path: Path
) -> None:
    path = tmp_path / "var" / "audit.jsonl"
    FileSink(path, fsync=False).append(
        {"event": "refused", "subject": "\x1b[2K\u202eevil", "jobId": "\n2099-01-01 start 200"}
    )
    hand_written = {"event": "refused", "subject": "\u202eevil\x85", "userAgent": "\u2028x"}
    with path.open("ab") as handle:
        handle.write(json.dumps(hand_written, ensure_ascii=False).encode() + b"\n")

    _, table, _ = audit_command("show")
    _, lines, _ = audit_command("show", "--json")

    _, escaped, edited = _printable_lines(table)
    assert "\\x1b[2K\\u202eevil" in escaped and "\\u202eevil\\x85" in edited
    shown = _printable_lines(lines)
    assert [json.loads(line) for line in shown] == [
        json.loads(line) for line in path.read_bytes().splitlines()
    ]
