"""The sinks and the trail: the file sink's chain and head, stdout, field order, no secrets."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.audit import AuditTrail, AuditUnavailableError, make_audit_trail
from reporting_svc.audit.chain import GENESIS, line_of, seal, verify
from reporting_svc.audit.database import DatabaseSink
from reporting_svc.audit.sinks import EMPTY_HEAD, FileSink, RecordNotWrittenError, StdoutSink
from reporting_svc.audit.trail import ANONYMOUS_USER_AGENT_LIMIT
from reporting_svc.text import visible
from tests.support import DOWNLOAD, OTHER_STUDY, STUDY

# docs/api.md §4, in its order, then the chain's two fields.
SPEC_FIELDS = [
    "time",
    "event",
    "requestId",
    "subject",
    "clientAddress",
    "userAgent",
    "jobId",
    "studyId",
    "mode",
    "reportName",
    "status",
    "delivery",
    "bytesSent",
    "complete",
    "sha256",
    "prev",
    "hash",
]
AUDIT_URL = "postgresql+psycopg://reporting@127.0.0.1:5432/audit"
MILLISECONDS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CONTENT = b"subjectId,arm\nS-0001,UNBLINDED-ARM-7f3a9c\n" * 64


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings of this module's app beyond the defaults; tests parametrize it."""
    return {}


@pytest.fixture
def settings(make_settings: Any, overrides: dict[str, Any]) -> Any:
    return make_settings(**overrides)


def test_file_sink_chains_from_the_genesis_and_keeps_count_and_last_hash_in_the_head(
    tmp_path: Path,
) -> None:
    sink = FileSink(tmp_path / "audit.jsonl", fsync=False)

    first = sink.append({"event": "head"})
    second = sink.append({"event": "refused"})

    assert first["prev"] == GENESIS
    assert second["prev"] == first["hash"]
    assert json.loads(sink.head_path.read_text()) == {
        "records": 2,
        "hash": second["hash"],
        "size": sink.path.stat().st_size,
    }
    assert sink.path.read_bytes().count(b"\n") == 2


def test_a_new_file_sink_on_an_existing_trail_continues_its_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    FileSink(path, fsync=False).append({"event": "head"})

    FileSink(path, fsync=False).append({"event": "head"})

    verdict = verify(path.read_bytes().splitlines(keepends=True))
    assert verdict.ok
    assert verdict.records == 2


@pytest.mark.parametrize(("fsync", "calls"), [(True, 3), (False, 0)])
def test_file_sink_syncs_each_record_to_disk_unless_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool, calls: int
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    sink = FileSink(tmp_path / "audit.jsonl", fsync=fsync)

    for _ in range(3):
        sink.append({"event": "head"})

    assert len(synced) == calls


@pytest.mark.parametrize(("durable", "calls"), [(True, 1), (False, 0)])
def test_the_head_is_synced_after_the_trail_with_every_durable_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, calls: int
) -> None:
    synced: list[str] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")))
    monkeypatch.setattr(
        os, "fdatasync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
    )
    sink = FileSink(tmp_path / "audit.jsonl", fsync=True)

    sink.append({"event": "start"}, durable=durable)

    assert synced == [str(sink.path), str(sink.head_path)] * calls


def test_a_record_that_is_not_durable_is_written_without_an_fsync_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    sink = FileSink(tmp_path / "audit.jsonl", fsync=True)

    sink.append({"event": "end"}, durable=False)
    assert synced == []
    sink.append({"event": "start"})

    assert len(synced) == 1  # one fsync of the file puts both on disk
    assert [json.loads(line)["event"] for line in sink.path.read_text().splitlines()] == [
        "end",
        "start",
    ]


def test_a_record_that_is_not_durable_is_written_while_a_durable_batch_waits_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk_busy = threading.Event()
    disk_free = threading.Event()
    synced: list[int] = []

    def slow_first_fsync(fd: int) -> None:
        if not synced:
            synced.append(fd)
            disk_busy.set()
            disk_free.wait(timeout=30)
        else:
            synced.append(fd)

    monkeypatch.setattr(os, "fsync", slow_first_fsync)
    sink = FileSink(tmp_path / "audit.jsonl", fsync=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(sink.append, {"event": "start"})
        assert disk_busy.wait(timeout=10), "the first batch never reached its fsync"
        second = pool.submit(sink.append, {"event": "end"}, durable=False)
        record = second.result(timeout=10)  # before the first batch's fsync is over
        assert not first.done()
        disk_free.set()
        assert record["prev"] == first.result(timeout=10)["hash"]
    assert len(synced) == 1


@pytest.mark.parametrize(
    ("event", "subject", "fsyncs"),
    [
        ("start", "alice", 1),
        ("redirect", "alice", 1),
        ("refused", "alice", 1),
        ("not-modified", "alice", 1),
        ("head", "alice", 1),
        ("end", "alice", 0),
        ("refused", None, 0),
    ],
    ids=["start", "redirect", "refused", "not-modified", "head", "end", "anonymous-refused"],
)
def test_every_record_but_the_end_and_an_anonymous_refusal_waits_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, event: str, subject: str, fsyncs: int
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    trail = AuditTrail(FileSink(tmp_path / "audit.jsonl", fsync=True), None)

    trail.write(event=event, requestId="r1", subject=subject)

    assert len(synced) == fsyncs


@pytest.mark.parametrize(
    ("status", "fsyncs"), [(401, 1), (403, 1), (404, 1), (410, 1), (416, 1), (503, 0), (502, 0)]
)
def test_a_refusal_for_the_service_own_state_waits_for_no_disk_one_judging_the_caller_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, fsyncs: int
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    trail = AuditTrail(FileSink(tmp_path / "audit.jsonl", fsync=True), None)

    trail.write(event="refused", requestId="r1", subject="alice", status=status)

    assert len(synced) == fsyncs


def test_file_sink_syncs_after_releasing_the_lock_so_other_processes_can_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FileSink(tmp_path / "audit.jsonl", fsync=True)
    lock_free_during_sync: list[bool] = []

    def fsync(fd: int) -> None:
        other = os.open(sink.path, os.O_WRONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock_free_during_sync.append(True)
        except BlockingIOError:
            lock_free_during_sync.append(False)
        finally:
            os.close(other)

    monkeypatch.setattr(os, "fsync", fsync)

    sink.append({"event": "head"})

    assert lock_free_during_sync == [True]


def test_a_head_longer_than_the_sinks_own_is_replaced_whole(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "audit.jsonl", fsync=False)
    sink.append({"event": "head"})
    records, last_hash, size = sink.head()
    pretty = {"records": records, "hash": last_hash, "size": size}
    sink.head_path.write_text(json.dumps(pretty, indent=40))  # an operator's hand-made head

    second = sink.append({"event": "head"})

    assert json.loads(sink.head_path.read_text()) == {
        "records": 2,
        "hash": second["hash"],
        "size": sink.path.stat().st_size,
    }


def test_file_sink_write_failure_raises_and_leaves_the_head_alone(tmp_path: Path) -> None:
    sink = FileSink(Path("/dev/full"), fsync=False)

    with pytest.raises(RecordNotWrittenError, match="No space left"):
        sink.append({"event": "start"})

    assert sink.head() == EMPTY_HEAD


def test_trail_writes_the_contracts_fields_in_the_contracts_order(tmp_path: Path) -> None:
    trail = AuditTrail(FileSink(tmp_path / "audit.jsonl", fsync=False), None)

    record = trail.write(event="refused", requestId="r1", status=401)

    assert list(record) == SPEC_FIELDS
    stored = json.loads((tmp_path / "audit.jsonl").read_text())
    assert list(stored) == SPEC_FIELDS
    assert stored["subject"] is None
    assert MILLISECONDS_UTC.fullmatch(stored["time"])


def test_trail_refuses_a_field_the_contract_does_not_name(tmp_path: Path) -> None:
    trail = AuditTrail(FileSink(tmp_path / "audit.jsonl", fsync=False), None)

    with pytest.raises(TypeError, match="token"):
        trail.write(event="start", token="eyJ...")

    assert not (tmp_path / "audit.jsonl").exists()


def test_trail_needs_at_least_one_sink() -> None:
    with pytest.raises(ValueError, match="at least one sink"):
        AuditTrail(None, None)


def test_trail_write_failure_is_logged_and_raised_as_audit_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trail = AuditTrail(FileSink(Path("/dev/full"), fsync=False), None)

    with caplog.at_level(logging.ERROR), pytest.raises(AuditUnavailableError):
        trail.write(event="start", requestId="req-full")

    assert any(
        "req-full" in entry.getMessage() and entry.levelno == logging.ERROR
        for entry in caplog.records
    )


def test_stdout_alone_chains_records_per_process_from_the_genesis() -> None:
    streams = [io.StringIO(), io.StringIO()]
    trails = [AuditTrail(None, StdoutSink(stream)) for stream in streams]

    for number in range(3):
        for trail in trails:
            trail.write(event="head", requestId=f"r{number}")

    for stream in streams:
        lines = stream.getvalue().encode().splitlines(keepends=True)
        assert json.loads(lines[0])["prev"] == GENESIS
        assert verify(lines).records == 3


def test_make_audit_trail_builds_the_sinks_the_settings_name(make_settings: Any) -> None:
    both = make_audit_trail(make_settings(audit_sink="file,stdout", audit_fsync=False))
    stdout_only = make_audit_trail(make_settings(audit_sink="stdout"))
    database = make_audit_trail(make_settings(audit_sink="postgres", audit_url=AUDIT_URL))

    assert isinstance(both.chained, FileSink) and both.stdout is not None
    assert both.chained.path == make_settings().audit_path
    assert both.chained.fsync is False
    assert stdout_only.chained is None and stdout_only.stdout is not None
    assert isinstance(database.chained, DatabaseSink) and database.stdout is None
    assert database.chained.engines.url == AUDIT_URL


def exercise(publish: Any, download: Any, token: Any) -> tuple[Any, list[str]]:
    """Granted and refused attempts of every kind; returns the job and the tokens sent."""
    job = publish(CONTENT, "unblinded.csv")
    granted = token(f"{STUDY}:test:REPORTING_VIEW")
    other = token(f"{OTHER_STUDY}:test:REPORTING_VIEW", subject="bob")
    bogus = "not-a-jwt-5e1f0c7d9a2b"
    assert download({"id": job.id}, granted).data == CONTENT
    assert download({"id": job.id}, granted, headers={"Range": "bytes=10-99"}).status_code == 206
    etag = download({"id": job.id}, granted, method="HEAD").headers["ETag"]
    assert download({"id": job.id}, granted, headers={"If-None-Match": etag}).status_code == 304
    assert download({"id": job.id}, other).status_code == 401
    assert download({"id": job.id}, bogus).status_code == 401
    return job, [granted, other, bogus]


@pytest.mark.parametrize("overrides", [{"audit_sink": "file,stdout"}], ids=["file,stdout"])
def test_file_and_stdout_carry_the_very_same_sealed_records(
    publish: Any, download: Any, token: Any, settings: Any, capsys: Any
) -> None:
    capsys.readouterr()

    exercise(publish, download, token)

    stdout = capsys.readouterr().out
    assert stdout.encode() == settings.audit_path.read_bytes()
    assert [json.loads(line)["event"] for line in stdout.splitlines()] == [
        "start",
        "end",
        "start",
        "end",
        "head",
        "not-modified",
        "refused",
        "refused",
    ]


@pytest.mark.parametrize("overrides", [{"audit_sink": "file,stdout"}], ids=["file,stdout"])
def test_records_hold_no_token_no_secret_and_no_file_content(
    publish: Any,
    download: Any,
    token: Any,
    settings: Any,
    capsys: Any,
    audit_records: Any,
) -> None:
    job, tokens = exercise(publish, download, token)

    for trail in (settings.audit_path.read_bytes(), capsys.readouterr().out.encode()):
        for sent in tokens:
            assert sent.encode() not in trail
            for part in sent.split("."):
                assert part.encode() not in trail
        assert settings.jwt_secret.encode() not in trail
        assert b"UNBLINDED-ARM" not in trail
        assert CONTENT[10:100] not in trail
    records = audit_records()
    assert {record["sha256"] for record in records} == {job.sha256, None}
    assert all(list(record) == SPEC_FIELDS for record in records)


@pytest.mark.parametrize(
    "damage",
    [
        "{}",
        '{"records": "many", "hash": "x"}',
        "[]",
        "{",
        '{"records": 1e400, "hash": "x", "size": 1}',
        '{"records": 1e400, "hash": "HASH", "size": SIZE}',
        '{"records": 1.0, "hash": "HASH", "size": SIZE}',
        '{"records": true, "hash": "HASH", "size": SIZE}',
        '{"records": -1, "hash": "HASH", "size": SIZE}',
        '{"records": NaN, "hash": "HASH", "size": SIZE}',
        '{"records": 1, "hash": "HASH", "size": 1e400}',
        '{"records": 1, "hash": "HASH", "size": -SIZE}',
        '{"records": 1, "hash": "HASH", "size": "SIZE"}',
        '{"records": 1, "hash": "NOTHEX", "size": SIZE}',
        '{"records": 1, "hash": "HASHa", "size": SIZE}',
        '{"records": 1, "hash": "HASH"}',
        '{"records": 1, "hash": "HASH", "size": SIZE, "extra": 0}',
        '{"records": 0, "hash": "HASH", "size": SIZE}',
    ],
)
def test_a_damaged_head_makes_the_trail_unavailable_instead_of_forking_the_chain(
    tmp_path: Path, damage: str
) -> None:
    sink = FileSink(tmp_path / "audit.jsonl", fsync=False)
    sink.append({"event": "head"})
    _, last_hash, size = sink.head()
    sink.head_path.write_text(
        damage.replace("NOTHEX", "g" * 64).replace("HASH", last_hash).replace("SIZE", str(size))
    )

    with pytest.raises(AuditUnavailableError, match=r"head file .* is damaged"):
        AuditTrail(sink, None).write(event="start")

    assert sink.path.stat().st_size == size
    assert "is damaged" in (sink.check() or "")


def add_a_chained_record_behind_the_head(sink: FileSink) -> None:
    """What a writer killed between its record and its head leaves, or a forger's line."""
    last = sink.path.read_bytes().splitlines()[-1]
    with sink.path.open("ab") as trail:
        trail.write(line_of(seal({"event": "start"}, json.loads(last)["hash"])))


def cut_the_last_record_and_delete_the_head(sink: FileSink) -> None:
    sink.path.write_bytes(b"".join(sink.path.read_bytes().splitlines(keepends=True)[:-1]))
    sink.head_path.unlink()


MISMATCHES = {
    "torn-tail": lambda sink: sink.path.open("ab").write(b'{"time":"2024-05-01T10:00'),
    "chained-record-behind-the-head": add_a_chained_record_behind_the_head,
    "last-record-cut": lambda sink: sink.path.write_bytes(sink.path.read_bytes()[:-10]),
    "head-emptied": lambda sink: sink.head_path.write_bytes(b""),
    "head-deleted": lambda sink: sink.head_path.unlink(),
    "cut-and-head-deleted": cut_the_last_record_and_delete_the_head,
    "trail-deleted": lambda sink: sink.path.unlink(),
}


@pytest.mark.parametrize("damage", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_a_trail_that_does_not_match_its_head_takes_no_record_until_repaired(
    tmp_path: Path, damage: Any
) -> None:
    sink = FileSink(tmp_path / "audit.jsonl", fsync=False)
    for number in range(3):
        sink.append({"requestId": f"before-{number}"})
    damage(sink)
    before = sink.path.read_bytes() if sink.path.exists() else b""

    with pytest.raises(RecordNotWrittenError, match="audit repair"):
        sink.append({"requestId": "after"})
    with pytest.raises(AuditUnavailableError, match="does not match its head"):
        AuditTrail(sink, None).write(event="start", requestId="after")

    assert sink.path.read_bytes() == before
    assert "does not match its head" in (sink.check() or "")


def test_concurrent_appends_share_fsyncs_and_each_caller_gets_its_own_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FileSink(tmp_path / "audit.jsonl", fsync=True)
    real_fsync = os.fsync
    fsyncs = []

    def slow_fsync(fd: int) -> None:
        fsyncs.append(fd)
        time.sleep(0.02)  # a slow disk, so that appends pile up behind one another
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    with ThreadPoolExecutor(max_workers=32) as pool:
        returned = list(pool.map(lambda n: sink.append({"requestId": f"r{n}"}), range(200)))

    lines = [json.loads(line) for line in sink.path.read_text().splitlines()]
    assert [record["requestId"] for record in returned] == [f"r{n}" for n in range(200)]
    assert sorted(json.dumps(r, sort_keys=True) for r in returned) == sorted(
        json.dumps(r, sort_keys=True) for r in lines
    )
    assert verify(line.encode() for line in sink.path.read_text().splitlines(True)).ok
    assert len(fsyncs) < 100


# Run under ``python -O``: asserts are gone there, so no refusal may rest on one.
UNDER_O = """
import json, os, sys, threading, time
from pathlib import Path
from reporting_svc.audit import AuditTrail, AuditUnavailableError
from reporting_svc.audit.sinks import FileSink

sink = FileSink(Path(sys.argv[1]), fsync=False)
sink.append({"event": "head"})
size = sink.path.stat().st_size
sink.head_path.write_text('{"records": 1e400, "hash": "x", "size": 1}')
trail = AuditTrail(sink, None)
real_pread = os.pread

def slow_pread(*args):  # a slow disk, so that appends pile up in one batch
    time.sleep(0.05)
    return real_pread(*args)

os.pread = slow_pread
start = threading.Barrier(20)
outcomes = []

def download():
    start.wait()
    try:
        trail.write(event="start", requestId="r")
        outcomes.append("written")
    except AuditUnavailableError:
        outcomes.append("unavailable")
    except Exception as error:
        outcomes.append(type(error).__name__)

threads = [threading.Thread(target=download) for _ in range(20)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"optimize": sys.flags.optimize, "outcomes": outcomes,
                  "grew": sink.path.stat().st_size != size}))
"""


def test_under_python_o_a_damaged_head_fails_every_waiting_record_closed(tmp_path: Path) -> None:
    ran = subprocess.run(  # this interpreter, a fixed script
        [sys.executable, "-O", "-c", UNDER_O, str(tmp_path / "audit.jsonl")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    result = json.loads(ran.stdout)
    assert result["optimize"] == 1
    assert result["outcomes"] == ["unavailable"] * 20
    assert result["grew"] is False


def test_a_flood_of_anonymous_refusals_is_all_on_record_without_an_fsync_each(
    client: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    audit_records: Any,
    record_property: Any,
) -> None:
    """The figure: 1,000 refusals with a 512-character User-Agent and a 200-character id
    cost 1,019 bytes and one fsync each before; now 635 bytes and none."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    headers = {"User-Agent": "x" * 512, "Authorization": "Bearer not-a-jwt"}
    query = {"id": "A" * 200}

    statuses = {
        client.get(DOWNLOAD, query_string=query, headers=headers).status_code for _ in range(1000)
    }

    records = audit_records()
    per_request = settings.audit_path.stat().st_size / 1000
    record_property("bytes_per_anonymous_refusal", per_request)
    record_property("fsyncs_per_anonymous_refusal", len(synced) / 1000)
    assert statuses == {401}
    assert [(r["event"], r["subject"]) for r in records] == [("refused", None)] * 1000
    assert {len(r["userAgent"]) for r in records} == {ANONYMOUS_USER_AGENT_LIMIT}
    assert synced == []
    assert per_request <= 640


@pytest.mark.parametrize("unsafe", ["\x1b", "\u2028", "\U000e0041"])
def test_an_anonymous_user_agent_is_cut_before_it_is_escaped_so_no_escape_is_halved(
    tmp_path: Path, unsafe: str
) -> None:
    agent = "a" * (ANONYMOUS_USER_AGENT_LIMIT - 1) + unsafe + "b" * 10
    trail = AuditTrail(FileSink(tmp_path / "audit.jsonl", fsync=False), None)

    trail.write(event="refused", status=401, userAgent=agent)

    stored = json.loads((tmp_path / "audit.jsonl").read_text())["userAgent"]
    assert stored == "a" * (ANONYMOUS_USER_AGENT_LIMIT - 1) + visible(unsafe)


# Every field a caller's text can reach (``time`` too: ``write`` takes one given).
TEXT_FIELDS = [name for name in SPEC_FIELDS[:-2] if name not in ("status", "bytesSent", "complete")]


def test_control_and_bidi_characters_in_every_text_field_are_stored_escaped(
    tmp_path: Path,
) -> None:
    trail = AuditTrail(FileSink(tmp_path / "audit.jsonl", fsync=False), None)

    trail.write(status=400, **{name: f"\x1b[2K{name}\u202e\x85\u2028" for name in TEXT_FIELDS})

    stored = json.loads((tmp_path / "audit.jsonl").read_text())
    for name in TEXT_FIELDS:
        assert stored[name] == f"\\x1b[2K{name}\\u202e\\x85\\u2028"
    assert verify([(tmp_path / "audit.jsonl").read_bytes()]).ok


def test_a_record_without_control_characters_is_stored_byte_for_byte_as_before(
    tmp_path: Path,
) -> None:
    fields = {
        "time": "2024-05-01T09:00:00.000Z",
        "event": "start",
        "requestId": "trace-42.a:b_c",
        "subject": "alice@example.org",
        "clientAddress": "2001:db8::7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) «été» C:\\x1b",
        "jobId": "A" * 32,
        "studyId": STUDY,
        "mode": "test",
        "reportName": "Données patients — Woche 4",
        "status": 200,
        "delivery": "local",
        "sha256": "ab" * 32,
    }
    trail = AuditTrail(FileSink(tmp_path / "audit.jsonl", fsync=False), None)

    trail.write(**fields)

    as_given = {name: fields.get(name) for name in SPEC_FIELDS[:-2]}
    assert (tmp_path / "audit.jsonl").read_bytes() == line_of(seal(as_given, GENESIS))
