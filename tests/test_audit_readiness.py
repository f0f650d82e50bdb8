"""/readyz tells the truth about the audit trail: 503 whenever a ``start`` cannot be written."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest
from flask.testing import FlaskClient

from reporting_svc import create_app
from reporting_svc.audit import sinks
from tests.support import error_of


@pytest.fixture
def job(publish: Any) -> Any:
    return publish(b"subjectId,visit\nS-0001,Screening\n", "visits.csv")


@pytest.fixture
def full_stdout() -> Iterator[TextIO]:
    """A stream that takes no byte, as standard output whose log shipper's disk is full."""
    stream = Path("/dev/full").open("w")  # noqa: SIM115 - closed below, whatever it holds
    yield stream
    with contextlib.suppress(OSError):  # the failed lines are still in its buffer
        stream.close()


def assert_not_ready_naming_the_audit_trail(client: FlaskClient, *words: str) -> None:
    response = client.get("/readyz")

    assert response.status_code == 503
    details = error_of(response)["details"]
    assert "audit trail" in details
    for word in words:
        assert word in details
    assert "/" not in details.replace("'reporting-svc audit repair'", "")  # no path


def test_a_write_cut_short_by_a_full_disk_is_taken_back_so_the_host_serves_with_space_again(
    client: FlaskClient,
    download: Any,
    bearer: str,
    job: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    audit_command: Any,
) -> None:
    """The torn bytes go at once; readiness then waits for an append that succeeds (a real
    freed disk also clears it: tests/reliability/test_faults.py)."""
    real_write = os.write

    def half_write(fd: int, data: bytes) -> int:  # the disk fills half way through
        return real_write(fd, data[: len(data) // 2])

    assert download({"id": job.id}, bearer).status_code == 200
    before = settings.audit_path.read_bytes()
    monkeypatch.setattr(sinks.os, "write", half_write)
    assert download({"id": job.id}, bearer).status_code == 503
    assert settings.audit_path.read_bytes() == before
    monkeypatch.setattr(sinks.os, "write", real_write)

    assert download({"id": job.id}, bearer).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert audit_command("verify")[0] == 0


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.with_name("audit.jsonl.head").write_text(
            '{"records": 1e400, "hash": "x", "size": 1}'
        ),
        lambda path: path.with_name("audit.jsonl.head").unlink(),
        lambda path: path.write_bytes(path.read_bytes()[:-5]),
    ],
    ids=["damaged-head", "head-deleted", "records-cut"],
)
def test_a_trail_that_takes_no_record_makes_readyz_503(
    client: FlaskClient, download: Any, bearer: str, job: Any, settings: Any, damage: Any
) -> None:
    assert download({"id": job.id}, bearer).status_code == 200
    assert client.get("/readyz").status_code == 200
    damage(settings.audit_path)

    assert download({"id": job.id}, bearer).status_code == 503
    assert_not_ready_naming_the_audit_trail(client)


@pytest.mark.parametrize("sink", ["stdout", "file,stdout"])
def test_a_stdout_sink_that_cannot_write_fails_downloads_and_readyz_until_a_write_succeeds(
    make_settings: Any,
    publish: Any,
    bearer: str,
    monkeypatch: pytest.MonkeyPatch,
    full_stdout: TextIO,
    sink: str,
) -> None:
    client = create_app(make_settings(audit_sink=sink)).test_client()
    job = publish(b"a,b\n1,2\n", "r.csv")
    headers = {"Authorization": f"Bearer {bearer}"}
    url = f"/ec-reporting-svc/rest/v2.0/reports/download?id={job.id}"
    monkeypatch.setattr(sys, "stdout", full_stdout)  # here: capsys replaces it before the test

    assert client.get(url, headers=headers).status_code == 503
    assert_not_ready_naming_the_audit_trail(client, "standard output")

    monkeypatch.undo()
    assert client.get(url, headers=headers).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_trail_on_dev_full_fails_downloads_and_readyz(
    make_settings: Any, publish: Any, bearer: str
) -> None:
    client = create_app(make_settings(audit_file="/dev/full")).test_client()
    job = publish(b"a,b\n1,2\n", "r.csv")
    url = f"/ec-reporting-svc/rest/v2.0/reports/download?id={job.id}"

    assert client.get(url, headers={"Authorization": f"Bearer {bearer}"}).status_code == 503
    assert_not_ready_naming_the_audit_trail(client, "not a regular file")


class Disk:
    """``os.statvfs`` of a disk whose free space the test sets."""

    def __init__(self, free_blocks: int):
        self.free_blocks = free_blocks
        self.real = os.statvfs

    def statvfs(self, path: Any) -> Any:
        real = self.real(path)
        fields = list(real)
        fields[4] = self.free_blocks  # f_bavail, in f_frsize blocks
        return os.statvfs_result(fields)


def test_an_append_the_disk_refuses_keeps_readyz_503_until_space_is_freed_or_one_succeeds(
    client: FlaskClient,
    download: Any,
    bearer: str,
    job: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quota or a full disk that statvfs does not show: the refusal itself is the news."""
    disk = Disk(free_blocks=10_000)
    monkeypatch.setattr(sinks.os, "statvfs", disk.statvfs)
    real_write = os.write

    def refused(fd: int, data: bytes) -> int:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(sinks.os, "write", refused)
    assert download({"id": job.id}, bearer).status_code == 503
    monkeypatch.setattr(sinks.os, "write", real_write)

    assert_not_ready_naming_the_audit_trail(client, "last append failed", "quota")
    disk.free_blocks += 1
    assert client.get("/readyz").status_code == 200
    disk.free_blocks -= 1
    assert_not_ready_naming_the_audit_trail(client, "last append failed")
    assert download({"id": job.id}, bearer).status_code == 200
    assert client.get("/readyz").status_code == 200
