"""``catalog rebuild`` and ``catalog check`` with the command, on a local store and on the
same store copied to moto's S3 server: the same rows from either."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration import processes as p
from tests.support import OTHER_STUDY, STUDY

pytestmark = pytest.mark.integration

REPORT = "E341BB429E7D44E3989D113A504F3BF8"


def rows(env: dict[str, str]) -> list[tuple[Any, ...]]:
    """Every column of every catalog row, by job id."""
    with sqlite3.connect(Path(env["REPORTING_SVC_VAR_DIR"]) / "catalog.sqlite3") as connection:
        return connection.execute("SELECT * FROM jobs ORDER BY id").fetchall()


def copy_to_bucket(root: Path, env: dict[str, str]) -> Any:
    """Upload a local store's files under the bucket's prefix: the layout is the same."""
    client = boto3.client(
        "s3",
        endpoint_url=env["REPORTING_SVC_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for path in root.rglob("*"):
        if path.is_file():
            key = env["REPORTING_SVC_S3_PREFIX"] + path.relative_to(root).as_posix()
            client.upload_file(str(path), env["REPORTING_SVC_S3_BUCKET"], key)
    return client


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A local store with five jobs published by the command, the tenant's among them;
    shared, since the tests only read its store (and rebuild its catalog as it was)."""
    folder = tmp_path_factory.mktemp("published")
    env = p.service_env(folder / "local")
    report = folder / "extract.csv"
    report.write_bytes(b"subjectId,visit\nS-0001,Screening\n")
    for options in [
        (),
        (),
        ("--study-id", STUDY, "--report-id", REPORT),
        ("--study-id", OTHER_STUDY),
        ("--tenant",),
    ]:
        p.publish_with_cli(env, report, *options)
    return env


def test_rebuild_from_a_local_store_and_from_s3_gives_the_same_rows(
    published: dict[str, str], moto_server: str, tmp_path: Path
) -> None:
    original = rows(published)
    s3 = p.s3_env(p.service_env(tmp_path / "s3"), moto_server)
    copy_to_bucket(Path(published["REPORTING_SVC_LOCAL_ROOT"]), s3)
    (Path(published["REPORTING_SVC_VAR_DIR"]) / "catalog.sqlite3").unlink()

    local_run = p.run_cli("catalog", "rebuild", env=published)
    s3_run = p.run_cli("catalog", "rebuild", env=s3)
    again = p.run_cli("catalog", "rebuild", env=s3)

    assert len(original) == 5
    assert rows(published) == original
    assert rows(s3) == original
    assert (
        local_run.stdout
        == s3_run.stdout
        == "OK: 5 job(s) indexed, 0 no longer in the store removed, "
        "0 withdrawal(s) and 0 purge(s) restored, 0 listing count(s) mended\n"
    )
    assert again.stdout == (
        "OK: 0 job(s) indexed, 0 no longer in the store removed, "
        "0 withdrawal(s) and 0 purge(s) restored, 0 listing count(s) mended\n"
    )
    assert local_run.stderr == ""


def test_check_on_s3_names_a_job_missing_from_either_side(
    published: dict[str, str], moto_server: str, tmp_path: Path
) -> None:
    s3 = p.s3_env(p.service_env(tmp_path / "s3"), moto_server)
    client = copy_to_bucket(Path(published["REPORTING_SVC_LOCAL_ROOT"]), s3)
    p.run_cli("catalog", "rebuild", env=s3)
    unindexed, unstored = (row[0] for row in rows(s3)[:2])
    with sqlite3.connect(Path(s3["REPORTING_SVC_VAR_DIR"]) / "catalog.sqlite3") as connection:
        connection.execute("DELETE FROM jobs WHERE id = ?", (unindexed,))
    key = f"{s3['REPORTING_SVC_S3_PREFIX']}jobs/{unstored}/record.json"
    client.delete_object(Bucket=s3["REPORTING_SVC_S3_BUCKET"], Key=key)

    result = p.run_cli("catalog", "check", env=s3, check=False)

    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == [
        f"in the store, not in the catalog: {unindexed}",
        f"in the catalog, not in the store: {unstored}",
    ]
