"""RFC 6266 ``Content-Disposition`` for a stored file name that must never inject anything."""

import unicodedata
from urllib.parse import quote

from werkzeug.http import quote_header_value

from ..storage.file_names import shown_file_name

_RFC5987_SAFE = "!#$&+-.^_`|~"


def content_disposition(file_name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, for any other name, ``filename*``.

    The name is the one the listing shows (``shown_file_name``): without path parts,
    control characters, quotes or backslashes, it can neither end the header, add a
    parameter nor point at a directory.
    """
    name = shown_file_name(file_name)
    fallback = _ascii_fallback(name)
    value = f"attachment; filename={quote_header_value(fallback, allow_token=False)}"
    if fallback != name:
        value += "; filename*=UTF-8''" + quote(name, safe=_RFC5987_SAFE)
    return value


def _ascii_fallback(name: str) -> str:
    """The name's ASCII letters, cleaned again as a name of their own.

    NFKD turns look-alikes (fullwidth solidus, fullwidth quotation mark, two-dot leader)
    into the very separators, quotes and dots that the first cleaning removed. ``%`` is
    replaced because some clients percent-decode the plain ``filename``.
    """
    decomposed = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return shown_file_name(decomposed.replace("%", "_"))
