"""The destination folder: claimed names, collisions, partial state, completion, manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reporting_svc.fetch.destination import Destination
from reporting_svc.fetch.failures import JobFailed
from reporting_svc.fetch.manifest import ManifestUnreadable

A, B, C = "A" * 32, "B" * 32, "C" * 32


def complete(folder: Destination, download_id: str, name: str, content: bytes) -> str:
    partial = folder.begin(download_id, name, etag='"e"', size=len(content), sha256=None)
    folder.part_path(partial).write_bytes(content)
    return folder.complete(partial, len(content), hashlib.sha256(content).hexdigest()).file


def test_a_completed_download_is_in_the_manifest_and_sha256sums(tmp_path: Path) -> None:
    folder = Destination(tmp_path / "out")

    name = complete(folder, A, "extract.csv", b"a,b\n")

    assert (tmp_path / "out" / name).read_bytes() == b"a,b\n"
    manifest = json.loads((tmp_path / "out" / ".reporting-svc" / "manifest.json").read_text())
    assert manifest["downloads"][A]["file"] == "extract.csv"
    sums = (tmp_path / "out" / "SHA256SUMS").read_text()
    assert sums == hashlib.sha256(b"a,b\n").hexdigest() + "  extract.csv\n"
    assert Destination(tmp_path / "out").present(A) is not None
    assert not list((tmp_path / "out" / ".reporting-svc" / "partial").iterdir())


def test_names_that_collide_even_by_letter_case_get_the_download_id(tmp_path: Path) -> None:
    folder = Destination(tmp_path)

    names = [
        complete(folder, job, name, b"x")
        for job, name in [(A, "x.csv"), (B, "X.CSV"), (C, "x.csv")]
    ]

    assert names == ["x.csv", f"X-{B}.CSV", f"x-{C}.csv"]


@pytest.mark.parametrize("name", ["SHA256SUMS", "sha256sums", ".reporting-svc", "MINE.txt"])
def test_our_own_files_and_a_users_file_are_never_overwritten(tmp_path: Path, name: str) -> None:
    (tmp_path / "mine.txt").write_text("the user's")
    folder = Destination(tmp_path)

    partial = folder.begin(A, name, etag=None, size=None, sha256=None)

    assert partial.file.casefold() not in {"sha256sums", ".reporting-svc", "mine.txt"}
    assert (tmp_path / "mine.txt").read_text() == "the user's"


def test_a_job_downloaded_again_keeps_its_own_name(tmp_path: Path) -> None:
    folder = Destination(tmp_path)
    complete(folder, A, "x.csv", b"one")

    assert complete(folder, A, "x.csv", b"two") == "x.csv"
    assert (tmp_path / "x.csv").read_bytes() == b"two"


def test_present_needs_the_file_at_its_size_and_the_listed_digest(tmp_path: Path) -> None:
    folder = Destination(tmp_path)
    complete(folder, A, "x.csv", b"one")
    digest = hashlib.sha256(b"one").hexdigest()

    assert folder.present(A, digest) is not None
    assert folder.present(A, "0" * 64) is None
    (tmp_path / "x.csv").write_bytes(b"longer")
    assert folder.present(A) is None


def test_a_partial_download_is_found_by_the_next_run_and_claims_its_name(tmp_path: Path) -> None:
    partial = Destination(tmp_path).begin(A, "x.csv", etag='"e"', size=10, sha256="ab")
    Destination(tmp_path).part_path(partial).write_bytes(b"12345")

    again = Destination(tmp_path)

    assert again.partial(A) == partial
    assert again.begin(B, "x.csv", etag=None, size=None, sha256=None).file == f"x-{B}.csv"


def test_a_partial_whose_part_is_gone_is_forgotten(tmp_path: Path) -> None:
    folder = Destination(tmp_path)
    partial = folder.begin(A, "x.csv", etag='"e"', size=10, sha256=None)
    folder.part_path(partial).unlink()

    assert folder.partial(A) is None
    assert folder.begin(B, "x.csv", etag=None, size=None, sha256=None).file == "x.csv"


@pytest.mark.parametrize("name", ["..", ".", "a/b", ""])
def test_a_path_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(JobFailed):
        Destination(tmp_path).path(name)


def test_an_unreadable_manifest_is_refused_not_overwritten(tmp_path: Path) -> None:
    manifest = tmp_path / ".reporting-svc" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text("{not json")

    with pytest.raises(ManifestUnreadable, match="move it away"):
        Destination(tmp_path)

    assert manifest.read_text() == "{not json"


def test_an_unreadable_partial_state_is_forgotten(tmp_path: Path) -> None:
    state = tmp_path / ".reporting-svc" / "partial" / f"{A}.json"
    state.parent.mkdir(parents=True)
    state.write_text("garbage")

    assert Destination(tmp_path).partial(A) is None
    assert not state.exists()
