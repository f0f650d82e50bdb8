"""Caller-supplied text made safe to store, print and log: shown, never obeyed.

A value that reaches a terminal, a log shipper or a regulator's grep must not move the
cursor, reorder what is printed around it (bidi overrides), hide characters (zero-width)
or start a new line for a reader that splits on Unicode line breaks. Such characters are
written as a visible escape instead; text without any is returned unchanged. A token in
a log line is replaced whole, whatever the request it came from looked like.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

# Control (Cc, U+0085 included), format (Cf: bidi overrides and isolates, zero-width
# characters), line and paragraph separators (Zl, Zp), and lone surrogates (Cs), which
# no terminal can print and a strict UTF-8 encoder refuses.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
REDACTED = "[redacted]"
# The credential after the word Bearer (RFC 6750's token68), whatever it looks like; and
# a JWT anywhere (JWS or JWE: dotted base64url segments, the first a JSON header, so
# starting ``eyJ``), however the line around it was cut. One pass finds both: a JWT
# whose last segment ends in "bearer" (``eyJ….xbearer tok``) takes the credential after
# it too, which a bearer match starting inside the JWT would otherwise have redacted.
_CREDENTIAL = r"[A-Za-z0-9._~+/-]+=*"
_TOKENS = re.compile(
    rf"(?i:(?P<bearer>bearer\s+){_CREDENTIAL})"
    rf"|eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)+(?:(?i:(?<=bearer)(?P<space>\s+){_CREDENTIAL}))?"
)


def visible(text: str) -> str:
    """``text`` with each unsafe character as ``\\x1b``, ``\\u202e`` or ``\\U000e0001``."""
    return _replace_unsafe(text, _escape)


def visible_json(line: str) -> str:
    """A JSON text with each unsafe character as a JSON escape (``\\u001b``).

    Inside a string the escape means the same character, so the JSON still parses to
    the same value; outside one (a stray CR or tab between tokens) it shows the damage.
    """
    return _replace_unsafe(line, _json_escape)


def visible_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields with every text value made ``visible``; other values as they are."""
    return {
        name: visible(value) if isinstance(value, str) else value for name, value in fields.items()
    }


def redact_tokens(text: str) -> str:
    """``text`` with every JWT-looking string and every bearer credential replaced."""
    return _TOKENS.sub(_redacted, text)


def _redacted(match: re.Match[str]) -> str:
    """A bearer credential keeps its ``Bearer``; a JWT (and a credential after it) goes."""
    if match["bearer"] is not None:
        return f"{match['bearer']}{REDACTED}"
    if match["space"] is not None:
        return f"{REDACTED}{match['space']}{REDACTED}"
    return REDACTED


def _replace_unsafe(text: str, escape: Callable[[str], str]) -> str:
    if text.isprintable():
        return text
    return "".join(
        escape(char) if unicodedata.category(char) in UNSAFE_CATEGORIES else char for char in text
    )


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _json_escape(char: str) -> str:
    return json.dumps(char)[1:-1]
