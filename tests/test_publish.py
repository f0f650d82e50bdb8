"""Publishing reports: the record built, the local store's layout, and the CLI commands."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from reporting_svc import cli
from reporting_svc.auth.grants import parse_grant
from reporting_svc.lifecycle.publish import PublishError, content_type_for, publish_report
from reporting_svc.storage import JobExists, JobRecord
from reporting_svc.storage.local import LocalStore
from reporting_svc.storage.record import parse_instant
from tests.support import SECRET, STUDY

JOB = "6A7C29DD011241DFBE1B64399283C860"
DASHED_JOB = "6a7c29dd-0112-41df-be1b-64399283c860"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "reports")


@pytest.fixture
def report_file(tmp_path: Path):
    """Write an upstream report file: ``report_file("name.csv", b"bytes")``."""

    def make(name: str = "report.csv", content: bytes = b"a,b\n1,2\n") -> Path:
        folder = tmp_path / "upstream"
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_bytes(content)
        return path

    return make


def publish_to(store, path: Path, **options) -> JobRecord:
    values = {"report_name": "Subject Data Extract", "mode": "test", "study_id": STUDY}
    values.update(options)
    return publish_report(store, path, **values)


def test_record_has_size_and_sha256_of_the_file(local_store, report_file):
    content = b"subjectId,visit\n" + b"S-0001,Screening\n" * 1000
    record = publish_to(local_store, report_file("extract.csv", content))
    assert record.size == len(content)
    assert record.sha256 == hashlib.sha256(content).hexdigest()
    assert record.status == "COMPLETED"
    assert record.fileName == "extract.csv"
    assert record.requiredPermission == "REPORTING_VIEW"


@pytest.mark.parametrize(
    ("name", "content_type", "rpt_format"),
    [
        ("extract.csv", "text/csv", "CSV"),
        ("summary.pdf", "application/pdf", "PDF"),
        ("listing.xlsx", XLSX, "XLSX"),
        ("bundle.zip", "application/zip", "ZIP"),
        ("EXTRACT.CSV", "text/csv", "CSV"),
        ("blob.reportdata", "application/octet-stream", "REPORTDATA"),
        ("no-extension", "application/octet-stream", "BIN"),
    ],
)
def test_content_type_and_format_follow_the_extension(
    local_store, report_file, name, content_type, rpt_format
):
    record = publish_to(local_store, report_file(name))
    assert record.contentType == content_type
    assert record.rptFormat == rpt_format
    assert content_type_for(name) == content_type


def test_given_file_name_decides_type_and_format(local_store, report_file):
    record = publish_to(local_store, report_file("tmp-upload"), file_name="Summary.pdf")
    assert (record.fileName, record.contentType, record.rptFormat) == (
        "Summary.pdf",
        "application/pdf",
        "PDF",
    )


def test_ids_and_mode_are_normalised(local_store, report_file):
    record = publish_to(
        local_store, report_file(), job_id=DASHED_JOB, study_id=STUDY.lower(), mode="ACTIVE"
    )
    assert (record.id, record.studyId, record.mode) == (JOB, STUDY, "active")
    assert local_store.get_record(DASHED_JOB) == record


def test_job_id_defaults_to_a_new_guid(local_store, report_file):
    first = publish_to(local_store, report_file())
    second = publish_to(local_store, report_file())
    assert first.id != second.id
    assert len(first.id) == 32
    assert first.id == first.id.upper()


def test_tenant_report_has_no_study(local_store, report_file):
    assert publish_to(local_store, report_file(), study_id=None).studyId is None


def test_kickoff_defaults_to_now_in_utc(local_store, report_file):
    before = datetime.now(UTC) - timedelta(seconds=1)
    record = publish_to(local_store, report_file())
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert record.rptKickoffDatetime.endswith("Z")
    assert before <= parse_instant(record.rptKickoffDatetime) <= after
    assert record.completedAt.endswith("Z")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2025-06-04T11:27:52.014Z", "2025-06-04T11:27:52.014Z"),
        ("2025-07-01T10:00:00Z", "2025-07-01T10:00:00.000Z"),
        ("2025-07-01T12:00:00+02:00", "2025-07-01T10:00:00.000Z"),
        ("2025-06-30T23:30:00.5-05:00", "2025-07-01T04:30:00.500Z"),
        ("2025-07-01T10:00:00.123999+00:00", "2025-07-01T10:00:00.123Z"),
    ],
)
def test_kickoff_and_expiry_are_stored_in_the_one_canonical_form(
    local_store, report_file, given, stored
):
    """UTC, milliseconds, ``Z``: what the listing answers, whatever form was typed."""
    record = publish_to(local_store, report_file(), kickoff=given, expires_at=given)

    assert record.rptKickoffDatetime == record.expiresAt == stored
    assert local_store.get_record(record.id) == record
    assert parse_instant(stored) == parse_instant(given).replace(
        microsecond=parse_instant(given).microsecond // 1000 * 1000
    )


def test_existing_id_is_refused_and_the_first_file_kept(local_store, report_file):
    first = publish_to(local_store, report_file("one.csv", b"first\n"), job_id=JOB)
    with pytest.raises(JobExists):
        publish_to(local_store, report_file("two.csv", b"second\n"), job_id=JOB.lower())
    assert local_store.get_record(JOB) == first
    with local_store.open(first) as handle:
        assert handle.read() == b"first\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"job_id": "not-a-guid"}, "job id"),
        ({"job_id": ""}, "job id"),
        ({"job_id": f"../{JOB}"}, "job id"),
        ({"study_id": "study-1"}, "study id"),
        ({"mode": "production"}, "mode"),
        ({"mode": ""}, "mode"),
        ({"report_name": ""}, "report name"),
        ({"report_name": "x" * 256}, "report name"),
        ({"report_name": "Extract\r\nX-Injected: 1"}, "report name"),
        ({"kickoff": "yesterday"}, "kickoff"),
        ({"kickoff": ""}, "kickoff"),
        ({"kickoff": "2025-07-01T10:00:00"}, "kickoff '2025-07-01T10:00:00' has no zone"),
        ({"kickoff": "2025-07-01"}, "kickoff '2025-07-01' must be an ISO-8601 date-time"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expiry '2030-01-01T00:00:00' has no zone"),
        ({"retain_days": 0}, "retention"),
        ({"retain_days": 10**6}, "retention"),
        ({"expires_at": "soon"}, "expiry"),
        ({"retain_days": 3, "expires_at": "2030-01-01T00:00:00Z"}, "not both"),
        ({"file_name": "../../etc/passwd"}, "file name"),
        ({"file_name": "extract\n.csv"}, "file name"),
        ({"file_name": "a\\b.csv"}, "file name"),
        ({"file_name": ".."}, "file name"),
        ({"file_name": ""}, "file name"),
        ({"file_name": "x" * 256}, "file name"),
    ],
)
def test_bad_argument_is_refused_and_nothing_written(
    local_store, report_file, tmp_path, options, message
):
    with pytest.raises(PublishError, match=message):
        publish_to(local_store, report_file(), **options)
    assert list((tmp_path / "reports").rglob("*")) == []


def test_a_file_whose_own_name_is_unsafe_needs_a_file_name(local_store, report_file):
    with pytest.raises(PublishError, match=r"file name '\.extract\.csv'"):
        publish_to(local_store, report_file(".extract.csv"))
    assert publish_to(local_store, report_file(".extract.csv"), file_name="extract.csv")


def test_unreadable_file_is_refused(local_store, tmp_path):
    with pytest.raises(PublishError, match="cannot read report file"):
        publish_to(local_store, tmp_path / "absent.csv")


def test_report_name_of_255_characters_is_accepted(local_store, report_file):
    assert publish_to(local_store, report_file(), report_name="x" * 255).reportName == "x" * 255


def store_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_local_store_layout(local_store, report_file, tmp_path):
    record = publish_to(local_store, report_file(content=b"data"), job_id=JOB, mode="training")
    root = tmp_path / "reports"
    assert store_files(root) == [
        f"jobs/{JOB}/claim",
        f"jobs/{JOB}/content",
        f"jobs/{JOB}/record.json",
    ]
    assert (root / "jobs" / JOB / "content").read_bytes() == b"data"
    assert JobRecord.from_json((root / "jobs" / JOB / "record.json").read_bytes()) == record


def test_index_markers_of_older_versions_are_ignored(local_store, report_file, tmp_path):
    publish_to(local_store, report_file(), job_id=JOB)
    for marker in (f"index/{STUDY}/test/{JOB}", f"index/tenant/test/{'0' * 32}"):
        (tmp_path / "reports" / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "reports" / marker).touch()

    assert list(local_store.job_ids()) == [JOB]
    assert list(local_store.entry_ids("withdrawn.json")) == []
    assert local_store.get_record("0" * 32) is None


# The command line, run in-process against the environment it reads.


@pytest.fixture
def cli_env(monkeypatch, tmp_path) -> Path:
    """A clean REPORTING_SVC_ environment: a local store and var dir under tmp_path."""
    for name in list(os.environ):
        if name.startswith("REPORTING_SVC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPORTING_SVC_LOCAL_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("REPORTING_SVC_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REPORTING_SVC_JWT_SECRET", SECRET)
    return tmp_path / "store"


def run_publish(report: Path, *extra: str) -> int:
    return cli.main(
        ["publish", str(report), "--report-name", "Subject Data Extract", "--mode", "test", *extra]
    )


def test_cli_publish_prints_the_record(cli_env, report_file, capsys):
    report = report_file("extract.csv", b"a,b\n")
    assert run_publish(report, "--study-id", STUDY.lower(), "--job-id", DASHED_JOB) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["id"] == JOB
    assert printed["studyId"] == STUDY
    assert printed["sha256"] == hashlib.sha256(b"a,b\n").hexdigest()
    assert JobRecord(**printed) == LocalStore(cli_env).get_record(JOB)


def test_cli_publish_tenant_report(cli_env, report_file, capsys):
    assert run_publish(report_file(), "--tenant", "--job-id", JOB) == 0
    assert json.loads(capsys.readouterr().out)["studyId"] is None
    assert LocalStore(cli_env).get_record(JOB).studyId is None


def test_cli_publish_same_id_twice_exits_1(cli_env, report_file, capsys):
    assert run_publish(report_file(), "--study-id", STUDY, "--job-id", JOB) == 0
    capsys.readouterr()
    assert run_publish(report_file(), "--study-id", STUDY, "--job-id", JOB) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"reporting-svc: error: job {JOB} already exists; files are written once\n"
    )


def test_cli_publish_study_and_tenant_are_mutually_exclusive(cli_env, report_file, capsys):
    with pytest.raises(SystemExit) as caught:
        run_publish(report_file(), "--study-id", STUDY, "--tenant")
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert not cli_env.exists()


def test_cli_publish_needs_study_or_tenant(cli_env, report_file, capsys):
    with pytest.raises(SystemExit) as caught:
        run_publish(report_file())
    assert caught.value.code == 2


@pytest.mark.parametrize(
    "extra",
    [
        ("--mode", "production"),
        ("--job-id", "123"),
        ("--kickoff", "yesterday"),
        ("--kickoff", "2025-07-01T10:00:00"),
        ("--expires-at", "2030-01-01T00:00:00"),
        ("--file-name", "../../etc/passwd"),
        ("--file-name", "extract\n.csv"),
    ],
)
def test_cli_publish_bad_argument_exits_2_with_one_line(cli_env, report_file, capsys, extra):
    assert run_publish(report_file(), "--study-id", STUDY, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("reporting-svc: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not cli_env.exists() or store_files(cli_env) == []


def test_cli_publish_refuses_a_zoneless_kickoff_saying_how_to_give_one(
    cli_env, report_file, capsys
):
    assert run_publish(report_file(), "--study-id", STUDY, "--kickoff", "2025-07-01T10:00") == 2
    assert capsys.readouterr().err == (
        "reporting-svc: error: kickoff '2025-07-01T10:00' has no zone: end it in Z (UTC) or an"
        " offset such as +02:00\n"
    )


def test_cli_publish_unsafe_file_name_says_the_rule(cli_env, report_file, capsys):
    assert run_publish(report_file(), "--study-id", STUDY, "--file-name", "../../etc/passwd") == 2
    assert capsys.readouterr().err == (
        "reporting-svc: error: file name '../../etc/passwd': must be 1 to 255 bytes of"
        ' printable characters without / \\ : * ? " < > |, start with no dot or space,'
        " end with no dot or space, and not be a reserved Windows name (CON, NUL, COM1, ...)\n"
    )


def test_cli_publish_missing_file_exits_2_with_one_line(cli_env, tmp_path, capsys):
    assert run_publish(tmp_path / "absent.csv", "--study-id", STUDY) == 2
    err = capsys.readouterr().err
    assert err.startswith("reporting-svc: error: cannot read report file")
    assert err.count("\n") == 1


def test_cli_publish_into_a_missing_bucket_says_what_to_fix_in_one_line(
    cli_env, report_file, s3_bucket, monkeypatch, capsys
):
    monkeypatch.setenv("REPORTING_SVC_STORE", "s3")
    monkeypatch.setenv("REPORTING_SVC_S3_BUCKET", "no-such-bucket")
    monkeypatch.setenv("REPORTING_SVC_S3_REGION", "us-east-1")

    assert run_publish(report_file(), "--study-id", STUDY) == 1

    err = capsys.readouterr().err
    assert err.startswith("reporting-svc: error: the store failed: S3 error NoSuchBucket: ")
    assert "create it, or correct REPORTING_SVC_S3_BUCKET" in err
    assert err.count("\n") == 1


def test_serve_warns_at_start_up_when_the_bucket_is_missing(
    cli_env, s3_bucket, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("REPORTING_SVC_STORE", "s3")
    monkeypatch.setenv("REPORTING_SVC_S3_BUCKET", "no-such-bucket")
    monkeypatch.setenv("REPORTING_SVC_S3_REGION", "us-east-1")

    # Stops before gunicorn starts: the warning comes from building the app.
    assert cli.main(["serve", "--gunicorn-config", str(tmp_path / "absent.py")]) == 2

    warning = capsys.readouterr().err.splitlines()[0]
    assert warning.startswith("reporting-svc: warning: the S3 bucket cannot be reached")
    assert "create it, or correct REPORTING_SVC_S3_BUCKET" in warning


def test_cli_publish_into_a_store_that_cannot_be_made_fails_in_one_line(
    cli_env, report_file, monkeypatch, tmp_path, capsys
):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("REPORTING_SVC_LOCAL_ROOT", str(tmp_path / "a-file" / "store"))

    assert run_publish(report_file(), "--study-id", STUDY) != 0
    err = capsys.readouterr().err
    assert err.startswith("reporting-svc: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_token_prints_a_jwt_with_the_grants(cli_env, capsys):
    grants = [f"{STUDY}:test,active:REPORTING_VIEW", "tenant:active:A,B"]
    argv = ["token", "--subject", "alice", "--ttl", "120"]
    for grant in grants:
        argv += ["--grant", grant]
    assert cli.main(argv) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="reporting-svc", issuer="reporting-svc"
    )
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 120
    assert claims["grants"] == [parse_grant(grant).to_claim() for grant in grants]


@pytest.mark.parametrize("ttl", ["0", "-60"])
def test_cli_token_refuses_a_ttl_that_mints_an_expired_token(cli_env, capsys, ttl):
    argv = ["token", "--subject", "alice", "--grant", "tenant:active:A", "--ttl", ttl]

    assert cli.main(argv) == 2
    assert capsys.readouterr() == (
        "",
        f"reporting-svc: error: --ttl must be a positive number of seconds; {ttl} would mint"
        " an expired token\n",
    )


def test_cli_bad_grant_exits_2_with_one_line(cli_env, capsys):
    assert cli.main(["token", "--subject", "alice", "--grant", "tenant:prod:A"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("reporting-svc: error: ")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
