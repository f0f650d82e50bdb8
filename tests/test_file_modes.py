"""Everything the service writes is its owner's and its group's alone, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reporting_svc import create_app
from reporting_svc.devsecret import dev_secret
from reporting_svc.file_modes import DIR_MODE, FILE_MODE, SECRET_MODE, make_dirs, open_new
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings
from reporting_svc.storage.entries import Withdrawal
from tests.support import DOWNLOAD, STUDY


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=lambda mask: f"umask-{mask:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask for the test, put back afterwards."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of ``root`` and everything under it, by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_a_published_withdrawn_and_downloaded_report_leaves_nothing_for_others(
    umask: int,
    make_settings: Callable[..., Settings],
    token: Callable[..., str],
    tmp_path: Path,
) -> None:
    report = tmp_path / "upstream.csv"
    report.write_bytes(b"subjectId\nS-0001\n")
    secret = dev_secret(tmp_path / "var")
    services: Any = create_app(make_settings()).extensions["reporting_svc"]
    record = publish_report(
        services.store, report, report_name="R", mode="test", study_id=STUDY,
        catalog=services.catalog,
    )  # fmt: skip
    kept = publish_report(
        services.store, report, report_name="R", mode="test", study_id=STUDY,
        catalog=services.catalog,
    )  # fmt: skip
    services.store.create_entry(record.id, Withdrawal("2026-01-01T00:00:00Z", "op", "test"))
    client = create_app(make_settings()).test_client()
    answer = client.get(
        DOWNLOAD,
        query_string={"id": kept.id},
        headers={"Authorization": f"Bearer {token(f'{STUDY}:test:REPORTING_VIEW')}"},
    )
    assert answer.status_code == 200 and secret

    store, var = modes(tmp_path / "reports"), modes(tmp_path / "var")
    jobs = {path for path in store if path.startswith("jobs/") and path.count("/") == 1}
    assert {path: store[path] for path in [".", "jobs", *jobs]} == dict.fromkeys(
        [".", "jobs", *jobs], DIR_MODE
    )
    files = {path: mode for path, mode in store.items() if path not in {".", "jobs", *jobs}}
    assert sorted(path.rsplit("/", 1)[1] for path in files) == sorted(
        ["claim", "content", "record.json"] * 2 + ["withdrawn.json"]
    )
    assert set(files.values()) == {FILE_MODE}
    assert var["."] == DIR_MODE
    assert var["dev-jwt-secret"] == SECRET_MODE
    assert {"catalog.sqlite3", "catalog.sqlite3-wal", "audit.jsonl"} <= set(var), var
    for path, mode in var.items():
        assert not mode & 0o027, (path, oct(mode))
        if not umask & 0o040:
            assert mode in (DIR_MODE, FILE_MODE, SECRET_MODE), (path, oct(mode))


def test_a_directory_keeps_the_group_it_inherits_through_set_group_id(
    umask: int, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2750)

    make_dirs(shared / "jobs" / "A")
    os.close(open_new(shared / "jobs" / "A" / "content"))

    assert stat.S_IMODE((shared / "jobs").stat().st_mode) == 0o2000 | DIR_MODE
    assert stat.S_IMODE((shared / "jobs" / "A").stat().st_mode) == 0o2000 | DIR_MODE
    assert stat.S_IMODE((shared / "jobs" / "A" / "content").stat().st_mode) == FILE_MODE


def test_an_existing_directory_is_left_as_the_operator_set_it(tmp_path: Path) -> None:
    tmp_path.joinpath("mine").mkdir(0o700)

    make_dirs(tmp_path / "mine" / "sub")

    assert stat.S_IMODE((tmp_path / "mine").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "mine" / "sub").stat().st_mode) == DIR_MODE
