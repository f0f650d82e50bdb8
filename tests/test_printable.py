"""The printable pattern of the OpenAPI document: Python's own rule, code point for code point."""

from __future__ import annotations

import re
import sys

import pytest

from reporting_svc.api.printable import printable_pattern, unprintable_class


def characters_to_try() -> str:
    """Every BMP character, and above it each one where Python's rule changes and its
    neighbours (matching every astral character takes Python's ``re`` seconds)."""
    changes = {
        code
        for code in range(0x10000, sys.maxunicode + 1)
        if chr(code).isprintable() != chr(code - 1).isprintable()
    }
    astral = {near for code in changes for near in (code - 1, code, code + 1)}
    codes = [*range(0x10000), *sorted(near for near in astral if near <= sys.maxunicode)]
    return "".join(map(chr, codes))


def test_the_class_holds_exactly_what_python_calls_unprintable() -> None:
    tried = characters_to_try()

    kept = re.sub(unprintable_class(), "", tried)

    assert kept == "".join(filter(str.isprintable, tried))


@pytest.mark.parametrize(
    "character",
    [
        " ",
        "a",
        "é",
        "€",
        "\ufffd",
        "😀",
        "\U00020000",
        "\t",
        "\x7f",
        "\xa0",
        "\xad",
        "\u2028",
        "\u202e",
        "\ud800",
        "\ue000",
        "\U000e0001",
        "\U0010ffff",
    ],
)
def test_a_character_matches_when_python_calls_it_printable(character: str) -> None:
    assert bool(re.fullmatch(printable_pattern(1, 1), character)) == character.isprintable()


def test_the_length_bounds_count_characters() -> None:
    pattern = re.compile(printable_pattern(2, 3))

    assert [bool(pattern.fullmatch("😀" * n)) for n in range(5)] == [
        False,
        False,
        True,
        True,
        False,
    ]
    assert not pattern.fullmatch("ab\n")
