"""What a destination folder holds: ``.reporting-svc/manifest.json`` and ``SHA256SUMS``.

The manifest is what a rerun trusts to skip a file; ``SHA256SUMS`` (``sha256sum -c``
format) lets anyone check the folder with standard tools. Both are replaced atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .failures import FetchError

STATE_DIR = ".reporting-svc"
MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One verified download: the job's id, its file in the folder, size, SHA-256, when."""

    downloadId: str  # noqa: N815 - the API's name for it
    file: str
    size: int
    sha256: str
    etag: str | None
    fetchedAt: str  # noqa: N815


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
    """Write beside ``path``, flush to disk, rename over it, and make the rename durable."""
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    sync_directory(path.parent)


def sync_directory(folder: Path) -> None:
    """fsync a directory, so a rename in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
