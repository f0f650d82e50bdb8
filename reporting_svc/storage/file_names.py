"""The one rule for a report's file name, wherever it appears: publish, listing, download.

A client saves a report under the name the listing or ``Content-Disposition`` gives it,
on any OS. So a name is safe only when it is one plain name on Windows, macOS and Linux
alike: no path part, no control or invisible character, nothing hidden, nothing reserved,
and no look-alike (fullwidth solidus, two-dot leader) that becomes one of these once
normalised (NFKC). Publish refuses any other name; a record stored around the service
with one is shown everywhere in the same cleaned form.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import PurePosixPath

from pathvalidate import ValidationError, sanitize_filename, validate_filename

FALLBACK_NAME = "report"
MAX_FILE_NAME_BYTES = 255
_PLATFORM = "universal"
_FORBIDDEN = frozenset('/\\:*?"<>|')
FILE_NAME_RULE = (
    f"must be 1 to {MAX_FILE_NAME_BYTES} bytes of printable characters without"
    ' / \\ : * ? " < > |, start with no dot or space, end with no dot or space,'
    " and not be a reserved Windows name (CON, NUL, COM1, ...)"
)


def check_file_name(name: str) -> str:
    """The name when a record may carry it; ValueError (with the rule) for any other."""
    if not is_safe_file_name(name):
        raise ValueError(FILE_NAME_RULE)
    return name


def is_safe_file_name(name: str) -> bool:
    """Whether ``name`` and its NFKC form are each one plain, visible file name."""
    return all(_plain(form) for form in (name, _nfkc(name)))


@lru_cache(maxsize=4096)
def shown_file_name(name: str) -> str:
    """``name`` if safe; otherwise its last path part cleaned until it is, or ``report``.

    A name left with only an extension (``.csv``) becomes ``report.csv``, so the client
    still knows what it saves; a long name is cut but keeps its extension. Remembered:
    every download and listed run asks it, and the check cost a download tens of µs.
    """
    if is_safe_file_name(name):
        return name
    base = PurePosixPath(name.replace("\\", "/")).name
    kept = [char for char in base if _plain_character(char)]
    hidden = False
    while kept and _nfkc(kept[0]).startswith((".", " ")):
        hidden, kept = hidden or _nfkc(kept[0]).startswith("."), kept[1:]
    while kept and _nfkc(kept[-1]).endswith((".", " ")):
        kept = kept[:-1]
    plain = "".join(kept)
    if hidden:
        plain = f"{FALLBACK_NAME}.{plain}" if plain else FALLBACK_NAME
    cleaned = sanitize_filename(_cut(plain), platform=_PLATFORM).strip()
    return cleaned if is_safe_file_name(cleaned) else FALLBACK_NAME


def _plain(form: str) -> bool:
    if not form.isprintable() or form.startswith(".") or form != form.strip():
        return False
    try:
        validate_filename(form, platform=_PLATFORM, max_len=MAX_FILE_NAME_BYTES)
    except ValidationError:
        return False
    return True


def _plain_character(char: str) -> bool:
    """A visible character no OS refuses in a name, nor one that becomes such under NFKC."""
    return all(part.isprintable() and part not in _FORBIDDEN for part in char + _nfkc(char))


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _cut(name: str) -> str:
    """At most MAX_FILE_NAME_BYTES of UTF-8, cut from the stem so the extension stays."""
    if len(name.encode()) <= MAX_FILE_NAME_BYTES:
        return name
    suffix = PurePosixPath(name).suffix
    if len(suffix.encode()) > MAX_FILE_NAME_BYTES // 4:
        suffix = ""
    room = MAX_FILE_NAME_BYTES - len(suffix.encode())
    stem = name[: len(name) - len(suffix)] if suffix else name
    return stem.encode()[:room].decode(errors="ignore") + suffix
