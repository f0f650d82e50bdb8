"""Caller text made safe: control and bidi characters shown as escapes, tokens redacted."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reporting_svc.text import redact_tokens, visible, visible_fields, visible_json

UNSAFE = [
    ("\x1b[2K", "\\x1b[2K"),  # Cc: a terminal escape
    ("a\nb\rc\td\x00", "a\\x0ab\\x0dc\\x09d\\x00"),  # Cc: line breaks, tab, NUL
    ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),  # Cc: DEL, NEL, the C1 CSI
    ("\u202e\u2066\u200b\u200d\ufeff\xad", "\\u202e\\u2066\\u200b\\u200d\\ufeff\\xad"),  # Cf
    ("\u2028\u2029", "\\u2028\\u2029"),  # Zl, Zp
    ("\U000e0041", "\\U000e0041"),  # Cf beyond the BMP: a tag character
    ("\ud800", "\\ud800"),  # Cs: a lone surrogate, as a JSON-decoded JWT claim can hold
]


@pytest.mark.parametrize(("raw", "shown"), UNSAFE)
def test_unsafe_characters_become_visible_escapes(raw: str, shown: str) -> None:
    assert visible(f"<{raw}>") == f"<{shown}>"


@pytest.mark.parametrize(
    "text",
    ["alice", "curl/8.5.0", "Données patients été.xlsx", "a b\xa0c", "日本語", "C:\\x1b", "🙂", ""],
)
def test_printable_text_is_returned_unchanged(text: str) -> None:
    assert visible(text) == text


@pytest.mark.parametrize("raw", [raw for raw, _ in UNSAFE])
def test_visible_json_escapes_inside_a_string_keep_the_value(raw: str) -> None:
    line = json.dumps({"subject": raw}, ensure_ascii=False)

    shown = visible_json(line)

    assert shown.isprintable()
    assert json.loads(shown) == {"subject": raw}


def test_visible_fields_changes_text_values_only() -> None:
    fields = {"subject": "al\x1bice", "status": 200, "complete": None, "jobId": "A" * 32}

    assert visible_fields(fields) == {
        "subject": "al\\x1bice",
        "status": 200,
        "complete": None,
        "jobId": "A" * 32,
    }


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"Invalid HTTP Header: 'Authorization Bearer {JWT}'", "[redacted]'"),
        (f"path /x/{JWT}/y", "path /x/[redacted]/y"),
        ("Authorization: Bearer opaque-metrics-token", "Authorization: Bearer [redacted]"),
        ("bearer\tYWJj/+.~_-==", "bearer\t[redacted]"),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "[redacted]"),  # unsigned
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9", "[redacted]"),  # cut before the signature
    ],
)
def test_tokens_are_redacted_wherever_they_appear(text: str, redacted: str) -> None:
    assert redact_tokens(text).endswith(redacted)
    assert "eyJ" not in redact_tokens(text)


def test_text_without_a_token_is_not_redacted() -> None:
    text = "worker 7 timed out after 30.5 s; request e2e-1.a:b"

    assert redact_tokens(text) == text


# Each input with what the two-regex redaction (bearer credentials, then JWTs) made of it.
TRICKY = [
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer [redacted]"),
    ("authorization: BEARER opaque~token+/==, next", "authorization: BEARER [redacted], next"),
    (
        f"GET /d?id=6A7C&token={JWT}&mode=test HTTP/1.1",
        "GET /d?id=6A7C&token=[redacted]&mode=test HTTP/1.1",
    ),
    ("GET /x?token=opaque123&access_token=abc", "GET /x?token=opaque123&access_token=abc"),
    (f"{JWT}Bearer tok", "[redacted] [redacted]"),  # a JWT running into the word Bearer
    (
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.bearer sig.bearer tok rest",
        "[redacted] [redacted] tok rest",
    ),
    ("bearer a==eyJb.c", "bearer [redacted][redacted]"),
    ("Bearer\u2003tok\u2028after", "Bearer\u2003[redacted]\u2028after"),  # Unicode spaces
    ("Bearer \u212aelvin-\u017f", "Bearer [redacted]"),  # the Kelvin sign and long s fold to k, s
    ("EYJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0", "EYJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0"),
    ("eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9"),  # a header alone, no dot
    ("Données été 日本語 bearer", "Données été 日本語 bearer"),
    ("bearer ", "bearer "),
    (f"x{JWT}é/{JWT}", "x[redacted]é/[redacted]"),
]


@pytest.mark.parametrize(("text", "redacted"), TRICKY)
def test_one_pass_redacts_exactly_as_the_two_regexes_did(text: str, redacted: str) -> None:
    assert redact_tokens(text) == redacted


def _two_regexes(text: str) -> str:
    """The redaction as it was defined before it became one pass: the reference."""
    bearer = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
    jwt = re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)+")
    return jwt.sub("[redacted]", bearer.sub(r"\g<1>[redacted]", text))


FRAGMENTS = ["eyJ", "a", ".", "=", "~", " ", "\u2028", "é", "\u212a", "bearer", "Bearer", "r"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join))
def test_one_pass_matches_the_two_regexes_on_any_mix_of_their_fragments(text: str) -> None:
    assert redact_tokens(text) == _two_regexes(text)
