"""The fetch command line: what it accepts, and that a token is never one of its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from reporting_svc import cli
from reporting_svc.fetch.options import FetchOptions, listing_study, options_from

JOB = "6a7c29dd-0112-41df-be1b-64399283c860"
SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
VALID = ["--url", "http://h", "--id", JOB, "--dest", "d"]


def parse(*args: str) -> FetchOptions:
    return options_from(cli.command_parser().parse_args(["fetch", *args]))


def test_one_job_is_normalised_and_the_url_loses_its_trailing_slash() -> None:
    options = parse("--url", "https://reports.example.com/", "--id", JOB, "--dest", "out")

    assert options.job_id == "6A7C29DD011241DFBE1B64399283C860"
    assert options.url == "https://reports.example.com"


@pytest.mark.parametrize(
    ("study", "expected"),
    [("null", "null"), ("NULL", "null"), (JOB, "6A7C29DD011241DFBE1B64399283C860")],
)
def test_a_study_or_the_tenant_is_what_the_listing_is_asked_for(study: str, expected: str) -> None:
    options = parse("--url", "http://h", "--study", study, "--mode", "ACTIVE", "--dest", "out")

    assert listing_study(options) == expected
    assert options.mode == "active"


@pytest.mark.parametrize(
    "args",
    [
        ["--url", "http://h", "--id", JOB, "--dest", "d", "--token", "secret"],
        ["--url", "http://h", "--dest", "d"],
        ["--url", "http://h", "--id", JOB, "--study", "null", "--dest", "d"],
        ["--url", "ftp://h", "--id", JOB, "--dest", "d"],
        ["--url", "http://user:pw@h", "--id", JOB, "--dest", "d"],
        ["--url", "http://h\\x", "--id", JOB, "--dest", "d"],
        ["--url", "http://h:1%40a", "--id", JOB, "--dest", "d"],
        ["--url", "http://h", "--id", "../../x", "--dest", "d"],
        ["--url", "http://h", "--id", JOB, "--dest", "d", "--parallel", "0"],
        ["--url", "http://h", "--id", JOB, "--dest", "d", "--max-runs", "0"],
        ["--url", "http://h", "--id", JOB, "--dest", "d", "--max-file-bytes", "-1"],
        ["--url", "http://h", "--id", JOB, "--dest", "d", "--file-deadline", "inf"],
        ["--url", "http://h", "--id", JOB, "--dest", "d", "--listing-deadline", "0"],
        ["--url", "http://h", "--study", "null", "--mode", "prod", "--dest", "d"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["fetch", *args])

    assert exited.value.code == 2


def test_fetch_needs_no_service_settings(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("REPORTING_SVC_CONFIG", str(tmp_path / "missing.toml"))
    monkeypatch.delenv("REPORTING_SVC_TOKEN", raising=False)

    status = cli.main(
        ["fetch", "--url", "http://127.0.0.1:9", "--id", JOB, "--dest", str(tmp_path / "d")]
    )

    assert status == 2
    assert "set REPORTING_SVC_TOKEN or pass --token-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mistake", "named"),
    [
        (["--token", SECRET], "unrecognized arguments: --token, 1 value (not shown)"),
        ([f"--token={SECRET}"], "unrecognized arguments: --token"),
        ([SECRET], "unrecognized arguments: 1 value (not shown)"),
        ([f"-t{SECRET}"], "unrecognized arguments: 1 value (not shown)"),
        (["--url", SECRET], "argument --url: not an http(s) URL"),
        (["--id", SECRET], "argument --id: must be a GUID"),
        (["--report-id", SECRET], "argument --report-id: must be a GUID"),
        (["--mode", SECRET], "argument --mode: must be one of test, active, training"),
        (["--parallel", SECRET], "argument --parallel: must be a whole number"),
        (["--retries", SECRET], "argument --retries: must be a whole number"),
        (["--timeout", SECRET], "argument --timeout: must be a number of seconds"),
    ],
)
def test_a_usage_error_names_the_mistake_never_the_value(
    mistake: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["fetch", *VALID, *mistake])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert named in err
    assert SECRET not in err


def test_a_token_given_as_the_token_file_is_not_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    status = cli.main(["fetch", *VALID, "--token-file", SECRET])

    err = capsys.readouterr().err
    assert status == 2
    assert "cannot read the --token-file: No such file or directory" in err
    assert SECRET not in err
