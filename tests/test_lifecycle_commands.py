"""``publish --retain-days``, ``withdraw`` and ``purge`` (docs/api.md §6), run in process."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.catalog import counts
from reporting_svc.catalog.queries import micros
from reporting_svc.lifecycle import Operator, Purger
from reporting_svc.storage import JobRecord, layout
from reporting_svc.storage.entries import Purge
from reporting_svc.storage.record import format_instant, parse_instant
from tests.support import BUCKET, STUDY, error_of

REASON = "wrong cut-off date"
PAST = "2020-01-01T00:00:00.000Z"
LEASE = timedelta(minutes=15)


@pytest.fixture
def stored(tmp_path: Path) -> Any:
    """``stored(job_id, name)``: the path of a job's key in the local store."""

    def path(job_id: str, name: str) -> Path:
        return tmp_path / "reports" / layout.JOBS / job_id / name

    return path


@pytest.fixture
def trail(audit_records: Any) -> Any:
    """``trail(event)``: the audit records of one event, after checking the chain."""

    def records(event: str) -> list[dict[str, Any]]:
        return [record for record in audit_records() if record["event"] == event]

    return records


def summary(*, purged: int = 0, finished: int = 0, held: int = 0, left: int = 0) -> str:
    """The last line of a purge that changed something."""
    return (
        f"OK: {purged} job(s) purged, {finished} finished after another purge,"
        f" {held} held by another purge's fresh claim, {left} left"
    )


def state(folder: Path) -> tuple[dict[str, bytes], bytes, list[Any]]:
    """The store's files, the audit trail and the catalog's rows: what a dry run keeps."""
    root = folder / "reports"
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with sqlite3.connect(folder / "var" / "catalog.sqlite3") as connection:
        rows = connection.execute("SELECT * FROM jobs ORDER BY id").fetchall()
    return files, (folder / "var" / "audit.jsonl").read_bytes(), rows


@pytest.mark.parametrize(
    ("options", "environ", "days"),
    [
        (["--retain-days", "3"], {}, 3),
        ([], {"RETENTION_DAYS": "30"}, 30),
        (["--retain-days", "2"], {"RETENTION_DAYS": "30"}, 2),
        ([], {}, None),
    ],
    ids=["option", "setting", "option-over-setting", "never"],
)
def test_publish_sets_expires_at_from_the_retention_in_days(
    publish_command: Any, command: Any, options: list[str], environ: dict[str, str], days: Any
) -> None:
    for name, value in environ.items():
        command("check", **{name: value})
    code, out, _ = publish_command(*options)

    record = json.loads(out)
    assert code == 0
    if days is None:
        assert record["expiresAt"] is None
    else:
        expected = parse_instant(record["completedAt"]) + timedelta(days=days)
        assert record["expiresAt"] == format_instant(expected)


def test_publish_takes_an_expiry_instant_instead(publish_command: Any) -> None:
    code, out, _ = publish_command("--expires-at", "2999-01-01T02:00:00+02:00")

    assert (code, json.loads(out)["expiresAt"]) == (0, "2999-01-01T00:00:00.000Z")


def test_publish_refuses_a_past_expiry_in_one_line_unless_allowed(
    publish_command: Any, tmp_path: Path
) -> None:
    """A report gone (410) from its first second is rarely what was meant; a back-fill of
    an expired run can still say so."""
    refused = publish_command("--expires-at", PAST)
    allowed = publish_command("--expires-at", PAST, "--allow-past-expiry")

    assert refused[:2] == (2, "")
    assert refused[2] == (
        f"reporting-svc: error: expiry '{PAST}' is already past: the report would be gone (410)"
        " from the start; allow a past expiry (--allow-past-expiry) to publish it so\n"
    )
    assert (allowed[0], json.loads(allowed[1])["expiresAt"]) == (0, PAST)
    records = (tmp_path / "reports" / layout.JOBS).glob(f"*/{layout.RECORD_NAME}")
    assert [JobRecord.from_json(path.read_bytes()).expiresAt for path in records] == [PAST]


@pytest.mark.parametrize(
    ("options", "environ"),
    [(["--retain-days", "0"], {}), ([], {"RETENTION_DAYS": "-1"}), ([], {"RETENTION_DAYS": "x"})],
)
def test_a_bad_retention_is_refused_in_one_line(
    publish_command: Any, command: Any, options: list[str], environ: dict[str, str]
) -> None:
    for name, value in environ.items():
        command("check", **{name: value})
    code, out, err = publish_command(*options)

    assert (code, out) == (2, "")
    assert err.startswith("reporting-svc: error:") and err.count("\n") == 1


def test_withdraw_writes_the_entry_and_one_withdrawn_record_naming_operator_and_reason(
    command: Any, publish: Any, stored: Any, trail: Any
) -> None:
    job = publish()

    code, out, _ = command("withdraw", job.id.lower(), "--reason", REASON, "--by", "ops-anna")

    entry = json.loads(stored(job.id, "withdrawn.json").read_bytes())
    assert (code, out.startswith(f"OK: job {job.id} withdrawn at ")) == (0, True)
    assert (entry["by"], entry["reason"]) == ("ops-anna", REASON)
    (record,) = trail("withdrawn")
    assert (record["subject"], record["jobId"], record["studyId"]) == ("ops-anna", job.id, STUDY)
    assert REASON in record["userAgent"]
    assert (record["sha256"], record["reportName"]) == (job.sha256, job.reportName)


def test_a_second_withdrawal_keeps_the_first_and_writes_no_record(
    command: Any, publish: Any, stored: Any, trail: Any
) -> None:
    job = publish()
    command("withdraw", job.id, "--reason", REASON, "--by", "ops-anna")
    first = stored(job.id, "withdrawn.json").read_bytes()

    code, out, _ = command("withdraw", job.id, "--reason", "another", "--by", "ops-ben")

    assert code == 1
    assert "withdrawn already" in out and f"by ops-anna: {REASON}" in out
    assert stored(job.id, "withdrawn.json").read_bytes() == first
    assert len(trail("withdrawn")) == 1


def test_publishing_a_withdrawn_id_again_is_refused_and_it_stays_withdrawn(
    command: Any, publish_command: Any, download: Any, bearer: str
) -> None:
    job_id = json.loads(publish_command()[1])["id"]
    command("withdraw", job_id, "--reason", REASON, "--by", "ops-anna")

    code, _, err = publish_command("--job-id", job_id)

    assert code == 1 and "already exists" in err
    assert error_of(download({"id": job_id}, bearer))["details"] == f"withdrawn: {REASON}"


@pytest.mark.parametrize(
    ("job_id", "reason", "operator"),
    [
        ("0" * 32, REASON, "ops-anna"),
        ("not-a-guid", REASON, "ops-anna"),
        (None, "", "ops-anna"),
        (None, "line one\nline two", "ops-anna"),
        (None, "x" * 501, "ops-anna"),
        (None, REASON, ""),
    ],
    ids=["unknown", "malformed", "empty-reason", "two-lines", "long-reason", "no-operator"],
)
def test_a_bad_withdrawal_is_refused_in_one_line_and_changes_nothing(
    command: Any, publish: Any, stored: Any, audit_records: Any, job_id: Any, reason: str,
    operator: str,
) -> None:  # fmt: skip
    job = publish()

    code, out, err = command("withdraw", job_id or job.id, "--reason", reason, "--by", operator)

    assert (code, out) == (2, "")
    assert err.startswith("reporting-svc: error:") and err.count("\n") == 1
    assert not stored(job.id, "withdrawn.json").exists()
    assert audit_records() == []


def test_withdraw_with_delete_content_purges_the_file_and_keeps_the_record(
    command: Any, publish: Any, stored: Any, trail: Any, download: Any, bearer: str
) -> None:
    job = publish()

    code, out, _ = command(
        "withdraw", job.id, "--reason", REASON, "--by", "ops-anna", "--delete-content"
    )

    assert code == 0 and "its file is purged" in out
    assert not stored(job.id, "content").exists()
    assert stored(job.id, "record.json").exists()
    assert [r["jobId"] for r in trail("withdrawn")] == [r["jobId"] for r in trail("purged")]
    assert error_of(download({"id": job.id}, bearer))["details"] == f"withdrawn: {REASON}"


@pytest.fixture
def three_jobs(publish: Any, command: Any) -> dict[str, Any]:
    """A job that expired, one that will expire, and one withdrawn a while ago."""
    jobs = {
        "expired": publish(expires_at=PAST),
        "live": publish(retain_days=30),
        "withdrawn": publish(),
    }
    command("withdraw", jobs["withdrawn"].id, "--reason", REASON, "--by", "ops-anna")
    return jobs


def test_rebuild_leaves_a_claim_not_on_record_for_the_next_purge_to_record_once(
    command: Any, three_jobs: dict[str, Any], tmp_path: Path, stored: Any, trail: Any
) -> None:
    expired = three_jobs["expired"].id
    command("purge")
    stored(expired, "purge-recorded.json").unlink()
    with sqlite3.connect(tmp_path / "var" / "catalog.sqlite3") as connection:
        connection.execute("UPDATE jobs SET purged_us = NULL")

    rebuilt = command("catalog", "rebuild")
    finished = command("purge", PURGE_LEASE_SECONDS="0")

    assert "0 purge(s) restored" in rebuilt[1]
    assert finished[1].splitlines()[-1].startswith("OK: 0 job(s) purged, 1 finished")
    assert stored(expired, "purge-recorded.json").exists()
    assert [record["jobId"] for record in trail("purged")] == [expired]
    assert command("catalog", "check")[0] == 0


def test_a_dry_run_lists_what_would_go_and_changes_nothing(
    command: Any, three_jobs: dict[str, Any], tmp_path: Path
) -> None:
    before = state(tmp_path)

    code, out, _ = command("purge", "--dry-run", "--withdrawn")

    assert code == 0
    assert out.splitlines() == [
        *sorted(f"would purge {three_jobs[n].id}" for n in ("expired", "withdrawn")),
        "DRY RUN: 2 job(s) would be purged, 0 left; nothing changed",
    ]
    assert state(tmp_path) == before


def test_purge_deletes_expired_files_once_keeps_records_and_leaves_withdrawn_unless_asked(
    command: Any, three_jobs: dict[str, Any], stored: Any, trail: Any, audit_command: Any
) -> None:
    expired, live, withdrawn = (three_jobs[n].id for n in ("expired", "live", "withdrawn"))

    first = command("purge", "--by", "cron")
    again = command("purge", "--by", "cron")
    with_withdrawn = command("purge", "--withdrawn", "--by", "cron")

    assert first[1].splitlines()[-1] == summary(purged=1, left=1)
    assert again[1].splitlines()[-1] == summary(left=1)
    assert with_withdrawn[1].splitlines()[-1].startswith("OK: 1 job(s) purged")
    assert [(r["jobId"], r["subject"]) for r in trail("purged")] == [
        (expired, "cron"),
        (withdrawn, "cron"),
    ]
    for job_id in (expired, withdrawn):
        assert not stored(job_id, "content").exists()
        assert stored(job_id, "record.json").exists() and stored(job_id, "purged.json").exists()
    assert stored(live, "content").exists()
    assert audit_command("verify")[0] == 0


def test_older_than_keeps_files_that_expired_more_recently(
    command: Any, publish: Any, stored: Any
) -> None:
    now = datetime.now(UTC)
    old = publish(expires_at=format_instant(now - timedelta(days=3)))
    recent = publish(expires_at=format_instant(now - timedelta(hours=1)))

    code, out, _ = command("purge", "--older-than", "2")

    assert (code, out.splitlines()[-1]) == (
        0,
        summary(purged=1),
    )
    assert not stored(old.id, "content").exists()
    assert stored(recent.id, "content").exists()


def test_a_purge_whose_record_cannot_be_written_takes_its_claim_back_and_fails(
    command: Any, publish: Any, stored: Any, tmp_path: Path
) -> None:
    job = publish(expires_at=PAST)

    code, _, err = command("purge", AUDIT_FILE="/dev/full")

    assert code == 1 and "audit trail failed" in err
    assert stored(job.id, "content").exists()
    assert not stored(job.id, "purged.json").exists()
    restored = command("purge", AUDIT_FILE=str(tmp_path / "var" / "audit.jsonl"))
    assert restored[1].splitlines()[-1].startswith("OK: 1 job(s) purged")


@pytest.mark.parametrize(("options", "moved"), [((), True), (("--dry-run",), False)])
def test_a_purge_moves_the_listing_counts_horizon_unless_it_is_a_dry_run(
    command: Any, publish: Any, catalog: Any, options: tuple[str, ...], moved: bool
) -> None:
    publish(expires_at=PAST)
    catalog.recount(datetime.now(UTC) - timedelta(days=1))
    started = datetime.now(UTC)

    assert command("purge", *options)[0] == 0

    with catalog.engines.reading() as connection:
        assert (counts.horizon(connection) >= micros(started)) is moved
    assert catalog.count_drift() == []


@pytest.fixture
def purge_at(app: Any) -> Any:
    """``purge_at(instant)``: run a purge in process as if started at ``instant``."""
    services = app.extensions["reporting_svc"]

    def run(now: datetime) -> Any:
        operator = Operator("cron-b", "reporting-svc purge")
        purger = Purger(services.store, services.catalog, services.audit, operator, now, LEASE)
        return purger.run()

    return run


@pytest.mark.parametrize(
    ("claimed", "on_record", "recovered"),
    [
        (True, False, "new"),
        (True, True, "claimant's"),
        (False, False, "new"),
    ],
    ids=["killed-before-its-record", "killed-after-its-record", "claim-without-instant"],
)
def test_a_claim_not_on_record_is_left_for_the_lease_then_recorded_once(
    app: Any,
    publish: Any,
    purge_at: Any,
    trail: Any,
    stored: Any,
    audit_command: Any,
    claimed: bool,
    on_record: bool,
    recovered: str,
) -> None:
    services = app.extensions["reporting_svc"]
    job, claimed_at = publish(expires_at=PAST), datetime.now(UTC)
    instant = format_instant(claimed_at)
    # What a claimant killed after its claim leaves: the claim, and perhaps its record.
    dead = Purge(
        purgedAt=instant, by="cron-a", host="host-a", claimedAt=instant if claimed else None
    )
    services.store.create_entry(job.id, dead)
    if on_record:
        Operator("cron-a", "reporting-svc purge").record(services.audit, "purged", job)

    early = purge_at(claimed_at + LEASE - timedelta(seconds=1))
    kept = stored(job.id, "content").exists()
    late = purge_at(claimed_at + LEASE)
    again = purge_at(claimed_at + LEASE)

    assert (early.held, early.finished) == (([job.id], []) if claimed else ([], [job.id]))
    assert kept is claimed
    assert [late.finished, again.finished] == ([[job.id], []] if claimed else [[], []])
    (record,) = trail("purged")
    assert (record["jobId"], record["subject"]) == (
        job.id, "cron-a" if recovered == "claimant's" else "cron-b"
    )  # fmt: skip
    if recovered == "new":
        assert f"for the claim of cron-a on host-a at {instant}" in record["userAgent"]
    entry = json.loads(stored(job.id, "purge-recorded.json").read_bytes())
    assert entry["requestId"] == record["requestId"]
    assert not stored(job.id, "content").exists()
    assert audit_command("verify")[0] == 0


def test_rebuild_restores_withdrawals_and_purges_from_the_store(
    command: Any, three_jobs: dict[str, Any], tmp_path: Path, listing: Any, bearer: str
) -> None:
    command("purge")
    with sqlite3.connect(tmp_path / "var" / "catalog.sqlite3") as connection:
        connection.execute("DELETE FROM jobs")

    check = command("catalog", "check")
    rebuilt = command("catalog", "rebuild")

    withdrawn, expired = three_jobs["withdrawn"].id, three_jobs["expired"].id
    assert check[0] == 1
    assert f"withdrawn in the store, not in the catalog: {withdrawn}" in check[1]
    assert f"purged in the store, not in the catalog: {expired}" in check[1]
    assert "listing count differs from the catalog's jobs" in check[1]
    assert rebuilt[1].endswith(
        "1 withdrawal(s) and 1 purge(s) restored, 1 listing count(s) mended\n"
    )
    assert command("catalog", "check")[0] == 0
    assert command("purge", "--dry-run")[1].startswith("DRY RUN: 0 job(s)")
    result = listing({"studyId": STUDY, "limit": "10", "offset": "0"}, bearer).get_json()
    assert [run["downloadId"] for run in result["result"]["reportRunStatus"]] == [
        three_jobs["live"].id
    ]


def test_on_s3_a_withdrawn_file_goes_only_once_every_process_has_forgotten_it(
    command: Any, report: Path, s3_bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The early purge runs at the withdrawal's own instant, so a slow host cannot let the
    cache's second pass between the two; the withdrawal with its file then waits for real."""
    s3 = {"STORE": "s3", "S3_BUCKET": BUCKET, "S3_REGION": "us-east-1", "S3_CACHE_SECONDS": "1"}
    job_id = json.loads(command("publish", str(report), "--report-name", "R", "--mode", "test",
                                "--study-id", STUDY, **s3)[1])["id"]  # fmt: skip
    instant = datetime.now(UTC)
    with monkeypatch.context() as frozen:
        frozen.setattr("reporting_svc.lifecycle.commands._now", lambda: instant)
        command("withdraw", job_id, "--reason", REASON, "--by", "ops-anna")
        early = command("purge", "--withdrawn")
    deleted = command(
        "withdraw", job_id, "--reason", REASON, "--by", "ops-anna", "--delete-content"
    )

    assert early[1].splitlines()[-1].endswith(summary(left=1).removeprefix("OK: "))
    assert "waiting 2 s for every host to refuse the job" in deleted[1]
    assert "its file is purged" in deleted[1]
    with pytest.raises(s3_bucket.exceptions.NoSuchKey):
        s3_bucket.get_object(Bucket=BUCKET, Key=layout.content_key(job_id))
