"""``reporting-svc publish`` into the catalog, and ``catalog upgrade``, ``rebuild``, ``check``,
``fold``."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reporting_svc.catalog.queries import micros

JOB = "6A7C29DD011241DFBE1B64399283C860"
OTHER_JOB = "11111111111111111111111111111111"
REPORT = "E341BB429E7D44E3989D113A504F3BF8"


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "catalog.sqlite3"


def indexed(catalog_file: Path) -> dict[str, dict[str, object]]:
    """The catalog's rows: job id -> the record it holds."""
    with sqlite3.connect(catalog_file) as connection:
        rows = connection.execute("SELECT id, record FROM jobs").fetchall()
    return {job_id: json.loads(text) for job_id, text in rows}


def job_folders(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "reports" / "jobs").iterdir())


def test_publish_indexes_the_job_with_its_report_id_and_specs(publish_command, catalog_file):
    code, out, _ = publish_command(
        "--job-id", JOB, "--report-id", REPORT.lower(), "--search-spec", "site=01",
        "--sort-spec", "visitDate desc",
    )  # fmt: skip

    printed = json.loads(out)
    assert code == 0
    assert printed["rptId"] == REPORT
    assert (printed["currSearchSpec"], printed["currSortSpec"]) == ("site=01", "visitDate desc")
    assert printed["expiresAt"] is None
    assert indexed(catalog_file) == {JOB: printed}


@pytest.mark.parametrize(
    "option", [("--report-id", "not-a-guid"), ("--search-spec", ""), ("--sort-spec", "a\nb")]
)
def test_publish_refuses_a_bad_report_id_or_spec(publish_command, tmp_path, option):
    code, _, err = publish_command(*option)

    assert code == 2
    assert err.startswith("reporting-svc: error:")
    assert not (tmp_path / "reports" / "jobs").exists()


def test_a_failed_catalog_write_says_so_and_publishing_again_completes_it(
    command, publish_command, catalog_file, tmp_path
):
    command("catalog", "upgrade")
    with sqlite3.connect(catalog_file) as connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'down'); END"
        )

    failed, _, err = publish_command("--job-id", JOB)
    content = job_folders(tmp_path)[0] / "content"
    written = content.stat().st_mtime_ns
    with sqlite3.connect(catalog_file) as connection:
        connection.execute("DROP TRIGGER refuse")
    again, out, _ = publish_command("--job-id", JOB)

    assert failed == 1
    assert f"job {JOB} is in the store but not in the catalog" in err
    assert f"--job-id {JOB}" in err
    assert again == 0
    assert json.loads(out)["id"] == JOB
    assert list(indexed(catalog_file)) == [JOB]
    assert job_folders(tmp_path) == [content.parent]
    assert content.stat().st_mtime_ns == written


def test_publishing_an_indexed_id_again_is_refused(publish_command):
    publish_command("--job-id", JOB)

    code, _, err = publish_command("--job-id", JOB)

    assert code == 1
    assert "already exists" in err


def test_another_file_under_a_stored_but_unindexed_id_is_refused(
    publish_command, catalog_file, tmp_path
):
    publish_command("--job-id", JOB)
    catalog_file.unlink()
    other = tmp_path / "other.csv"
    other.write_bytes(b"something else\n")

    code, _, err = publish_command("--job-id", JOB, path=other)

    assert code == 1
    assert "already exists" in err


def test_catalog_upgrade_creates_then_finds_the_schema_current(command):
    first = command("catalog", "upgrade")
    second = command("catalog", "upgrade")

    assert first[0] == second[0] == 0
    assert "(was empty)" in first[1]
    assert "already" in second[1]


def test_rebuild_indexes_every_stored_job_once_and_drops_jobs_the_store_lacks(
    command, publish_command, catalog_file, tmp_path
):
    published = {json.loads(publish_command()[1])["id"] for _ in range(3)}
    expected = indexed(catalog_file)
    catalog_file.unlink()
    publish_command("--job-id", OTHER_JOB)
    shutil.rmtree(tmp_path / "reports" / "jobs" / OTHER_JOB)

    first = command("catalog", "rebuild")
    second = command("catalog", "rebuild")

    assert set(expected) == published
    assert indexed(catalog_file) == expected
    assert first[:2] == (
        0,
        "OK: 3 job(s) indexed, 1 no longer in the store removed, "
        "0 withdrawal(s) and 0 purge(s) restored, 0 listing count(s) mended\n",
    )
    assert second[:2] == (
        0,
        "OK: 0 job(s) indexed, 0 no longer in the store removed, "
        "0 withdrawal(s) and 0 purge(s) restored, 0 listing count(s) mended\n",
    )


def test_check_names_jobs_missing_from_either_side_and_fails(
    command, publish_command, catalog_file, tmp_path
):
    kept = json.loads(publish_command()[1])["id"]
    publish_command("--job-id", JOB)
    publish_command("--job-id", OTHER_JOB)
    with sqlite3.connect(catalog_file) as connection:
        connection.execute("DELETE FROM jobs WHERE id = ?", (JOB,))
    (tmp_path / "reports" / "jobs" / OTHER_JOB / "record.json").unlink()

    code, out, _ = command("catalog", "check")

    assert code == 1
    assert f"in the store, not in the catalog: {JOB}" in out
    assert f"in the catalog, not in the store: {OTHER_JOB}" in out
    assert kept not in out


def test_check_finds_a_listing_count_written_around_the_catalog_and_rebuild_mends_it(
    command, publish_command, catalog_file
):
    publish_command("--job-id", JOB)
    with sqlite3.connect(catalog_file) as connection:
        connection.execute("UPDATE job_counts SET n = n + 5")

    found, out, _ = command("catalog", "check")
    rebuilt, summary, _ = command("catalog", "rebuild")
    after = command("catalog", "check")

    assert found == 1
    assert "listing count differs from the catalog's jobs: scope=" in out
    assert (rebuilt, summary.endswith("1 listing count(s) mended\n")) == (0, True)
    assert after[:2] == (0, "OK: the store and the catalog hold the same jobs\n")


def test_check_of_a_store_and_catalog_that_agree_succeeds(command, publish_command):
    publish_command()

    code, out, _ = command("catalog", "check")

    assert (code, out) == (0, "OK: the store and the catalog hold the same jobs\n")


def test_a_catalog_that_cannot_be_reached_fails_the_command_in_one_line(command, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")

    code, _, err = command("catalog", "check", CATALOG_URL=f"sqlite:///{blocker}/c.sqlite3")

    assert code == 1
    assert err.startswith("reporting-svc: error: the catalog failed:")
    assert err.count("\n") == 1


def test_fold_moves_the_listing_counts_horizon_to_now(command, publish_command, catalog_file):
    publish_command()
    with sqlite3.connect(catalog_file) as connection:
        connection.execute("UPDATE count_horizon SET horizon_us = 0")
    started = datetime.now(UTC)

    code, out, _ = command("catalog", "fold")

    with sqlite3.connect(catalog_file) as connection:
        (horizon_us,) = connection.execute("SELECT horizon_us FROM count_horizon").fetchone()
    assert code == 0
    assert out.startswith("OK: the listing counts' horizon is ")
    assert horizon_us >= micros(started)
