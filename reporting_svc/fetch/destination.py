"""The destination folder: which name each job gets, its ``.part`` and its state, completion.

A download in progress is ``.reporting-svc/partial/<id>.part`` plus ``<id>.json`` beside
it (its name, the server's ETag for ``If-Range``, size and digest), so a later run
resumes it. A ``.part`` is named by the job's id, never by a report's name, so no report
name can reach one. Names are claimed under a lock, so parallel downloads never share a
file; every path is checked to be directly inside the folder.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO

from .failures import JobFailed
from .manifest import (
    STATE_DIR,
    SUMS_NAME,
    Entry,
    Manifest,
    checked_folder,
    create_new,
    is_regular_file,
    now,
    sync_directory,
    write_atomically,
)
from .naming import safe_file_name, with_download_id
from .verify import hash_of

PART_SUFFIX = ".part"
RESERVED = frozenset({STATE_DIR.casefold(), SUMS_NAME.casefold()})


@dataclass(frozen=True)
class Partial:
    """A download under way: where its bytes go and what the server said about the file."""

    downloadId: str  # noqa: N815 - the API's name for it
    file: str
    etag: str | None
    size: int | None
    sha256: str | None


class Destination:
    """One folder of downloads, shared by the fetch's threads."""

    def __init__(self, root: Path, *, rehash: bool = False, read_only: bool = False):
        """``read_only`` (a dry run) reads what is there and creates nothing, not even the
        folder or its state folder; only ``present`` may then be asked."""
        if not read_only:
            root.mkdir(parents=True, exist_ok=True)
        self.rehash = rehash
        self.read_only = read_only
        self.root = root.resolve()
        state = checked_folder(self.root / STATE_DIR, create=not read_only)
        self.partials = checked_folder(state / "partial", create=not read_only)
        self.manifest = Manifest(self.root)
        self._lock = threading.Lock()
        self._claims = {partial.file.casefold(): partial.downloadId for partial in self._saved()}

    def present(self, download_id: str, sha256: str | None = None) -> Entry | None:
        """The manifest's entry when its file is still there and still its bytes (and,
        when the listing gives one, the same SHA-256); None means fetch it.

        A plain file at its size whose modification and change times are those recorded
        counts as unchanged; any other (or every file, with ``rehash``) is hashed again.
        """
        entry = self.manifest.entries.get(download_id)
        if entry is None or (sha256 is not None and entry.sha256 != sha256):
            return None
        path = self.path(entry.file)
        if not is_regular_file(path) or path.stat().st_size != entry.size:
            return None
        stamps = _stamps(path)
        if not self.rehash and stamps == (entry.mtimeNs, entry.ctimeNs):
            return entry
        if hash_of(path).hexdigest() != entry.sha256:
            return None
        if stamps != (entry.mtimeNs, entry.ctimeNs) and not self.read_only:
            entry = replace(entry, mtimeNs=stamps[0], ctimeNs=stamps[1])
            with self._lock:
                self.manifest.record(entry)
        return entry

    def partial(self, download_id: str) -> Partial | None:
        """The download of this job left by an earlier run, if its ``.part`` is still there."""
        partial = _read_state(self._state_path(download_id))
        if partial is None:
            return None
        if partial.downloadId != download_id or not is_regular_file(self.part_path(partial)):
            self.discard(partial)
            return None
        return partial

    def begin(
        self,
        download_id: str,
        server_name: str | None,
        *,
        etag: str | None,
        size: int | None,
        sha256: str | None,
    ) -> Partial:
        """Claim a safe name for the job, save its state and create an empty ``.part``."""
        with self._lock:
            name = self._name_for(download_id, safe_file_name(server_name))
            self._claims[name.casefold()] = download_id
        partial = Partial(download_id, name, etag, size, sha256)
        write_atomically(self._state_path(download_id), json.dumps(asdict(partial)).encode())
        part = self.part_path(partial)
        part.unlink(missing_ok=True)  # an orphan of an unreadable state, or anything planted
        os.close(create_new(part))
        return partial

    def append(self, partial: Partial) -> BinaryIO:
        """The job's ``.part`` opened to add bytes at its end; never through a symlink."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.fdopen(os.open(self.part_path(partial), flags), "ab")

    def discard(self, partial: Partial) -> None:
        """Forget a download: its ``.part``, its state and its claim on the name."""
        self.part_path(partial).unlink(missing_ok=True)
        self._state_path(partial.downloadId).unlink(missing_ok=True)
        with self._lock:
            self._claims.pop(partial.file.casefold(), None)

    def complete(self, partial: Partial, size: int, sha256: str) -> Entry:
        """Rename the verified (and already fsynced) ``.part`` into place and record it."""
        path = self.path(partial.file)
        os.replace(self.part_path(partial), path)
        sync_directory(self.root)
        mtime, ctime = _stamps(path)
        entry = Entry(
            partial.downloadId, partial.file, size, sha256, partial.etag, now(), mtime, ctime
        )
        with self._lock:
            self.manifest.record(entry)
        self._state_path(partial.downloadId).unlink(missing_ok=True)
        return entry

    def path(self, name: str) -> Path:
        """``name`` inside the folder; anything that would land elsewhere is refused."""
        path = self.root / name
        if path.parent != self.root or name in ("", ".", ".."):
            raise JobFailed(f"refusing the file name {name!r}: it is not a plain name")
        return path

    def part_path(self, partial: Partial) -> Path:
        """Where the job's bytes go until they are verified: by its id, in the state folder."""
        return self.partials / f"{partial.downloadId}{PART_SUFFIX}"

    def _name_for(self, download_id: str, name: str) -> str:
        """The job's own earlier name, else ``name``, else ``name`` with the id appended."""
        earlier = self.manifest.entries.get(download_id)
        if earlier is not None:
            return earlier.file
        for candidate in (name, with_download_id(name, download_id)):
            if not self._taken(candidate, download_id):
                return candidate
        raise JobFailed(f"no free file name for {name!r}")

    def _taken(self, name: str, download_id: str) -> bool:
        key = name.casefold()
        owners = {
            entry.file.casefold(): entry.downloadId for entry in self.manifest.entries.values()
        }
        owner = self._claims.get(key) or owners.get(key)
        if owner is not None:
            return owner != download_id
        existing = {child.name.casefold() for child in self.root.iterdir()}
        return key in RESERVED or key in existing

    def _saved(self) -> list[Partial]:
        states = (_read_state(path) for path in self.partials.glob("*.json"))
        return [partial for partial in states if partial is not None]

    def _state_path(self, download_id: str) -> Path:
        return self.partials / f"{download_id}.json"


def _stamps(path: Path) -> tuple[int, int]:
    """The file's modification and change times in ns: any write, ``touch`` or rename of
    it changes its change time, which no one can set back."""
    status = path.stat()
    return status.st_mtime_ns, status.st_ctime_ns


def _read_state(path: Path) -> Partial | None:
    """A saved download's state; one that cannot be read is removed (its ``.part`` is then
    an orphan the next download of that job overwrites)."""
    try:
        return Partial(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, OSError):
        path.unlink(missing_ok=True)
        return None
