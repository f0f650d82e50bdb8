"""``reporting-svc check``: every engine reached, every problem one line, nothing changed."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.fetch.credentials import TOKEN_VARIABLE
from reporting_svc.settings import OTHER_VARIABLES, PREFIX, load_settings
from tests.support import BUCKET

Command = Callable[..., tuple[int, str, str]]


def tree(folder: Path) -> list[str]:
    """Every path under ``folder``, so a test sees anything made there."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def contents(folder: Path) -> dict[Path, bytes]:
    """Every file under ``folder`` with its bytes, but SQLite's WAL index (``-shm``, shared
    memory any reader rewrites) and an empty WAL (which a reader opens): neither holds
    any of the database's content."""
    return {
        path: path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
        and not path.name.endswith("-shm")
        and not (path.name.endswith("-wal") and path.stat().st_size == 0)
    }


def problems(err: str) -> list[str]:
    """The problem lines ``check`` wrote, each checked to be one line of its own."""
    lines = err.splitlines()
    assert all(line.startswith("reporting-svc: error: ") for line in lines), err
    return lines


def test_check_of_a_new_embedded_default_passes_and_makes_nothing(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv(PREFIX + "HOME", str(home))
    for name in ("LOCAL_ROOT", "VAR_DIR", "JWT_SECRET"):
        monkeypatch.delenv(PREFIX + name)

    code, out, err = command("check")

    assert (code, err) == (0, "")
    assert f"OK: no deployment in {home} yet: serve --init or publish --init starts one" in out
    assert "OK: the development secret is made under" in out
    assert f"OK: the local store's root {home}/var/reports is made at first start" in out
    assert tree(tmp_path) == ["home"]


def test_check_refuses_a_missing_local_root_and_makes_nothing(
    command: Command, tmp_path: Path
) -> None:
    code, out, err = command("check", LOCAL_ROOT="/proc/nope")

    assert code == 1
    assert problems(err) == [
        "reporting-svc: error: the local store's root /proc/nope does not exist: create it,"
        f" or correct {PREFIX}LOCAL_ROOT"
    ]
    assert "OK: settings, keys and hooks load" in out
    assert not (tmp_path / "var").exists()


def test_check_passes_a_published_local_deployment_and_changes_nothing(
    command: Command, publish_command: Command, tmp_path: Path
) -> None:
    assert publish_command()[0] == 0
    gc.collect()  # publish's engine, in this process, closes: SQLite folds its WAL in now
    before = contents(tmp_path)

    code, out, err = command("check")

    assert (code, err) == (0, "")
    assert f"OK: the local store's root {tmp_path / 'reports'} is readable" in out
    assert f"OK: the SQLite catalog {tmp_path / 'var' / 'catalog.sqlite3'} is at revision" in out
    assert contents(tmp_path) == before


def test_a_misspelt_variable_is_refused_naming_the_setting_it_resembles(
    command: Command, tmp_path: Path
) -> None:
    (tmp_path / "reports").mkdir()

    code, out, err = command("check", STOER="s3")

    assert (code, out) == (2, "")
    assert err == (
        f"reporting-svc: error: unknown setting(s) in the environment: {PREFIX}STOER"
        f" (did you mean {PREFIX}STORE?)\n"
    )


def test_the_service_refuses_a_misspelt_variable_too(tmp_path: Path) -> None:
    from reporting_svc.settings import SettingsError

    with pytest.raises(SettingsError, match=f"{PREFIX}S3_BUCKT .did you mean {PREFIX}S3_BUCKET"):
        load_settings({f"{PREFIX}VAR_DIR": str(tmp_path), f"{PREFIX}S3_BUCKT": "reports"})


def test_the_variables_that_are_no_setting_are_known() -> None:
    """fetch's token variable may be set in the shell that runs the service's commands."""
    assert TOKEN_VARIABLE.removeprefix(PREFIX).lower() in OTHER_VARIABLES


def test_check_names_missing_s3_credentials(command: Command, no_aws_credentials: None) -> None:
    code, _, err = command(
        "check", STORE="s3", S3_BUCKET=BUCKET, S3_ENDPOINT_URL="http://127.0.0.1:9"
    )

    assert code == 1
    (line,) = problems(err)
    assert "NoCredentialsError" in line and "AWS_ACCESS_KEY_ID" in line
    assert line.endswith(f"({PREFIX}S3_BUCKET {BUCKET})")


def test_check_names_a_missing_bucket_and_passes_once_it_exists(
    command: Command, s3_bucket: Any
) -> None:
    code, _, err = command("check", STORE="s3", S3_BUCKET="absent", S3_REGION="us-east-1")
    assert code == 1
    (line,) = problems(err)
    assert line.startswith("reporting-svc: error: the S3 bucket cannot be reached (S3 error 404")
    assert "does not exist at this endpoint" in line
    assert line.endswith(f"({PREFIX}S3_BUCKET absent)")

    code, out, err = command("check", S3_BUCKET=BUCKET)
    assert (code, err) == (0, "")
    assert f"OK: {PREFIX}S3_BUCKET {BUCKET} answers" in out


def test_check_names_an_audit_trail_that_does_not_match_its_head(
    command: Command, tmp_path: Path
) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "audit.jsonl").write_text("not a record\n")

    code, _, err = command("check")

    assert code == 1
    (line,) = problems(err)
    assert "audit.jsonl does not match its head" in line
    assert (tmp_path / "var" / "audit.jsonl").read_text() == "not a record\n"


def test_check_names_a_key_file_that_cannot_be_used(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reports").mkdir()
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    monkeypatch.delenv(PREFIX + "JWT_SECRET")

    code, _, err = command("check", JWT_JWKS_FILE=str(jwks))

    assert code == 1
    assert problems(err) == [
        f"reporting-svc: error: {PREFIX}JWT_JWKS_FILE {jwks} holds no signing key"
    ]


def test_check_refuses_a_deployment_without_a_signing_key(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reports").mkdir()
    monkeypatch.delenv(PREFIX + "JWT_SECRET")

    code, _, err = command("check")

    assert code == 1
    (line,) = problems(err)
    assert line.startswith(
        f"reporting-svc: error: no signing key is configured: set {PREFIX}JWT_JWKS_FILE"
    )
    assert not (tmp_path / "var").exists()
