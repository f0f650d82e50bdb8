"""What a destination folder holds: ``.reporting-svc/manifest.json`` and ``SHA256SUMS``.

The manifest is what a rerun trusts to skip a file; ``SHA256SUMS`` (``sha256sum -c``
format) lets anyone check the folder with standard tools. Both are replaced atomically.
Every file the client writes is created new (``O_CREAT|O_EXCL|O_NOFOLLOW``) under a name
of its own, in a folder checked not to be a symlink, so a symlink planted in the folder
never redirects a write outside it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .failures import FetchError, UnsafeFolder

STATE_DIR = ".reporting-svc"
MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
VERSION = 1
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """One verified download: the job's id, its file in the folder, size, SHA-256, when;
    and the file's modification and change times (ns) when it was verified, so a file
    touched since is hashed again before it counts (None: hash it)."""

    downloadId: str  # noqa: N815 - the API's name for it
    file: str
    size: int
    sha256: str
    etag: str | None
    fetchedAt: str  # noqa: N815
    mtimeNs: int | None = None  # noqa: N815
    ctimeNs: int | None = None  # noqa: N815


class ManifestUnreadable(FetchError):
    """The manifest is not what this client writes; it is never overwritten blindly."""


class Manifest:
    """The verified downloads of one folder, keyed by download id."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / STATE_DIR / MANIFEST_NAME
        self.entries: dict[str, Entry] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.entries = {key: Entry(**value) for key, value in data["downloads"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ManifestUnreadable(
                    f"{self.path} cannot be read; move it away to fetch everything again"
                ) from None

    def record(self, entry: Entry) -> None:
        """Add or replace a download, then write the manifest and ``SHA256SUMS`` anew."""
        self.entries[entry.downloadId] = entry
        downloads = {key: asdict(value) for key, value in sorted(self.entries.items())}
        text = json.dumps({"version": VERSION, "downloads": downloads}, indent=2)
        write_atomically(self.path, text.encode() + b"\n")
        lines = sorted(f"{entry.sha256}  {entry.file}\n" for entry in self.entries.values())
        write_atomically(self.folder / SUMS_NAME, "".join(lines).encode())


def now() -> str:
    """UTC now in the API's own form, milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomically(path: Path, data: bytes) -> None:
    """Write a new file beside ``path``, flush it to disk, rename it over ``path`` (a
    symlink there is replaced, not followed), and make the rename durable."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with os.fdopen(create_new(temp), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def create_new(path: Path) -> int:
    """A file descriptor for writing a file that did not exist; never through a symlink."""
    return os.open(path, NEW_FILE, 0o666)


def checked_folder(path: Path, *, create: bool = True) -> Path:
    """``path`` as a real folder, created if missing (unless not ``create``: a dry run
    writes nothing); a symlink (even to a folder) or anything else there raises UnsafeFolder."""
    if create:
        path.mkdir(exist_ok=True)
    elif not os.path.lexists(path):
        return path
    if not stat.S_ISDIR(path.lstat().st_mode):
        raise UnsafeFolder(f"{path} is a symlink or not a folder; refusing to write through it")
    return path


def is_regular_file(path: Path) -> bool:
    """A plain file at ``path`` itself, not a symlink to one."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def sync_directory(folder: Path) -> None:
    """fsync a directory, so a rename in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
