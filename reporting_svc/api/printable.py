"""Python's ``str.isprintable`` as a regular expression, for the OpenAPI document.

The records accept a report name of printable characters (``check_report_name``); a
client generating requests from the document must be told the same rule, or it sends
names the service refuses. The rule depends on the interpreter's Unicode database, so
the expression is computed from it rather than written out.
"""

from __future__ import annotations

import re
import sys
from functools import cache

_UNPRINTABLE_RUN = re.compile(rb"\x00+")


@cache
def unprintable_class() -> str:
    """A character class matching exactly one character that ``str.isprintable`` refuses.

    Range ends in the BMP are ``\\uXXXX`` escapes, which Python and ECMA-262 read alike
    (lone surrogates included); above it they are the characters themselves, since the
    two dialects spell such escapes differently. JSON Schema reads a pattern as ECMA-262
    in Unicode mode, where such a character is one code point, as in Python.
    """
    printable = bytes(map(str.isprintable, map(chr, range(sys.maxunicode + 1))))
    spans = (_span(run.start(), run.end() - 1) for run in _UNPRINTABLE_RUN.finditer(printable))
    return f"[{''.join(spans)}]"


def printable_pattern(minimum: int, maximum: int) -> str:
    """A whole string of ``minimum`` to ``maximum`` printable characters.

    Each character is "any character that is not unprintable" (a lookahead) rather than
    a class of the printable ones: both sets hold over a hundred thousand code points,
    and generators such as Hypothesis's ``from_regex`` (under schemathesis) build a class
    one code point at a time, which takes them seconds for every use of the pattern.
    """
    return f"^(?:(?!{unprintable_class()})[\\s\\S]){{{minimum},{maximum}}}$"


def _span(first: int, last: int) -> str:
    return _char(first) if first == last else f"{_char(first)}-{_char(last)}"


def _char(code: int) -> str:
    return f"\\u{code:04X}" if code <= 0xFFFF else chr(code)
