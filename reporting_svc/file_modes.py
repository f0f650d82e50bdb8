"""The modes of everything the service writes to disk: its owner and group, nobody else.

Reports, records, the catalog and the audit trail are readable around authorisation by
anyone who can open them, so no file or directory the service creates grants anything
to other accounts. nginx reaches the store's files through a group (docs/deploying.md),
so those are created group-readable whatever the process's umask: a restrictive umask
would otherwise lock nginx out, and a permissive one would open them to everybody. A
directory keeps the set-group-ID bit it inherits, which is how new job directories and
files take the store's group.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o640
DIR_MODE = 0o750
SECRET_MODE = 0o600


def make_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents with DIR_MODE; existing ones are left as
    they are (an operator's choice)."""
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(DIR_MODE)
        except FileExistsError:
            continue
        _set_mode(directory, DIR_MODE, os.stat(directory).st_mode)


def open_new(path: Path, *, exclusive: bool = False, mode: int = FILE_MODE) -> int:
    """A descriptor for writing a file the service creates (or rewrites), with ``mode``.

    ``exclusive`` refuses an existing file (FileExistsError); otherwise one is emptied.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    try:
        _set_mode(fd, mode, os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def _set_mode(target: int | Path, mode: int, current: int) -> None:
    """``mode`` exactly, keeping a directory's inherited set-group-ID bit."""
    wanted = mode | (current & stat.S_ISGID if stat.S_ISDIR(current) else 0)
    if stat.S_IMODE(current) != wanted:
        os.chmod(target, wanted)
