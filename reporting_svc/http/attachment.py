"""RFC 6266 ``Content-Disposition`` for a stored file name that must never inject anything."""

import unicodedata
from pathlib import PurePosixPath
from urllib.parse import quote

from werkzeug.http import quote_header_value

FALLBACK_NAME = "report"
_RFC5987_SAFE = "!#$&+-.^_`|~"


def content_disposition(file_name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, for any other name, ``filename*``.

    Path parts, control characters, quotes and backslashes are removed first, so the
    value can neither end the header, add a parameter nor point at a directory.
    """
    name = _safe_name(file_name)
    fallback = _ascii_fallback(name)
    value = f"attachment; filename={quote_header_value(fallback, allow_token=False)}"
    if fallback != name:
        value += "; filename*=UTF-8''" + quote(name, safe=_RFC5987_SAFE)
    return value


def _safe_name(file_name: str) -> str:
    """The last path part without control characters or quotes; never empty, never hidden.

    A name left with only an extension (``.csv``) becomes ``report.csv`` so the
    client still knows what it saves.
    """
    base = PurePosixPath(file_name.replace("\\", "/")).name
    kept = "".join(
        char for char in base if not unicodedata.category(char).startswith("C") and char != '"'
    ).strip()
    if not kept.strip("."):
        return FALLBACK_NAME
    return FALLBACK_NAME + "." + kept.lstrip(".") if kept.startswith(".") else kept


def _ascii_fallback(name: str) -> str:
    """The name's ASCII letters, cleaned again as a name of their own.

    NFKD turns look-alikes (fullwidth solidus, fullwidth quotation mark, two-dot leader)
    into the very separators, quotes and dots that the first cleaning removed. ``%`` is
    replaced because some clients percent-decode the plain ``filename``.
    """
    decomposed = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _safe_name(decomposed.replace("%", "_"))
