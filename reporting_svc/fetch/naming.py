"""File names from a server, made safe to create on every OS and never outside the folder."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

from pathvalidate import sanitize_filename

from ..text import UNSAFE_CATEGORIES

FALLBACK_NAME = "report"
# Bytes, not characters: leaves room for "-<32 hex digits>" and ".part" within the 255
# bytes that ext4, APFS and NTFS allow in one name.
MAX_NAME_BYTES = 200
MAX_SUFFIX_CHARS = 16


def safe_file_name(raw: str | None) -> str:
    """The last path part of ``raw``, cleaned for Windows, macOS and Linux alike.

    Separators, ``..``, control characters, reserved Windows names (``CON``, ``NUL``,
    ``COM1``, ...) and characters any of them refuses are removed or changed; a leading
    dot is dropped (no hidden files); a long name is cut but keeps its extension.
    """
    base = PurePosixPath((raw or "").replace("\\", "/")).name
    base = "".join(char for char in base if not _unsafe(unicodedata.category(char)))
    suffix = PurePosixPath(base).suffix
    if len(suffix) > MAX_SUFFIX_CHARS:
        suffix = ""
    stem = _cut(base[: len(base) - len(suffix)], MAX_NAME_BYTES - len(suffix.encode()))
    name = sanitize_filename(stem + suffix, platform="universal", max_len=MAX_NAME_BYTES)
    name = name.strip().lstrip(".").strip()
    return name or FALLBACK_NAME


def with_download_id(name: str, download_id: str) -> str:
    """``extract.csv`` for download ``ABC`` becomes ``extract-ABC.csv``: a second run of
    the same name gets its own file."""
    path = PurePosixPath(name)
    return f"{path.stem}-{download_id}{path.suffix}"


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, never half a character."""
    return text.encode()[: max(limit, 0)].decode(errors="ignore")


def _unsafe(category: str) -> bool:
    """Controls, formats, unassigned and private (``C*``), and line or paragraph breaks."""
    return category.startswith("C") or category in UNSAFE_CATEGORIES
