"""content_disposition: a stored file name can inject no header, parameter, path or quote."""

from __future__ import annotations

import pytest
from werkzeug.http import parse_options_header

from reporting_svc.http.attachment import content_disposition


def _parsed(file_name: str) -> tuple[str, dict[str, str]]:
    value = content_disposition(file_name)
    assert "\r" not in value and "\n" not in value
    assert value.isascii()
    return parse_options_header(value)


def _fallback(file_name: str) -> str:
    """The plain ``filename="..."`` parameter, which every client reads."""
    value = content_disposition(file_name)
    plain = value.split("; filename*=")[0]
    return parse_options_header(plain)[1]["filename"]


def test_ascii_name_is_one_quoted_filename() -> None:
    assert content_disposition("report.csv") == 'attachment; filename="report.csv"'


def test_ascii_name_with_spaces_keeps_them_quoted() -> None:
    value = content_disposition("Subject Data Extract.csv")

    assert value == 'attachment; filename="Subject Data Extract.csv"'


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/var/reports/x.csv", "x.csv"),
        ("C:\\reports\\x.csv", "x.csv"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\\b.csv", "b.csv"),
    ],
)
def test_path_parts_are_stripped(file_name: str, expected: str) -> None:
    assert _parsed(file_name) == ("attachment", {"filename": expected})


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ('a";b=c.csv', "a;b=c.csv"),
        ('"quoted".csv', "quoted.csv"),
        ("a\r\nSet-Cookie: x=1.csv", "aSet-Cookie x=1.csv"),  # ":" names a drive on Windows
        ("line\nbreak.csv", "linebreak.csv"),
        ("tab\there.csv", "tabhere.csv"),
        ("nul\x00.csv", "nul_.csv"),  # NUL is a device name on Windows
        ("esc\x1b[31m.csv", "esc[31m.csv"),
        ("del\x7f.csv", "del.csv"),
        ("x.csv\u202e", "x.csv"),
    ],
)
def test_quotes_and_control_characters_are_removed(file_name: str, expected: str) -> None:
    kind, params = _parsed(file_name)

    assert kind == "attachment"
    assert params == {"filename": expected}


def test_header_injection_cannot_add_a_parameter() -> None:
    params = _parsed('x.csv"; filename="evil.exe')[1]

    assert params == {"filename": "x.csv; filename=evil.exe"}


@pytest.mark.parametrize(
    ("file_name", "fallback"),
    [
        ("Données été.csv", "Donnees ete.csv"),
        ("Ünïcödé.pdf", "Unicode.pdf"),
        ("日本語.csv", "report.csv"),
        ("日本語", "report"),
        ("報告 2025.xlsx", "2025.xlsx"),
    ],
)
def test_non_ascii_name_has_ascii_fallback_and_utf8_filename_star(
    file_name: str, fallback: str
) -> None:
    value = content_disposition(file_name)

    assert _fallback(file_name) == fallback
    assert "filename*=UTF-8''" in value
    assert _parsed(file_name) == ("attachment", {"filename": file_name})


def test_filename_star_is_percent_encoded_utf8() -> None:
    value = content_disposition("Données été.csv")

    assert value == (
        'attachment; filename="Donnees ete.csv"; '
        "filename*=UTF-8''Donn%C3%A9es%20%C3%A9t%C3%A9.csv"
    )


@pytest.mark.parametrize(
    "file_name",
    [
        "..\uff0f..\uff0fetc\uff0fpasswd",  # fullwidth solidus: NFKD makes it "/"
        "\u2025\uff0fsecret.csv",  # two-dot leader: NFKD makes it ".."
        "\uff02quoted\uff02.csv",  # fullwidth quotation mark: NFKD makes it '"'
        "a\uff3cb.csv",  # fullwidth reverse solidus: NFKD makes it a backslash
    ],
)
def test_ascii_fallback_of_lookalike_characters_holds_no_path_or_quote(file_name: str) -> None:
    fallback = _fallback(file_name)

    assert not set(fallback) & set('/\\"')
    assert not fallback.startswith(".")
    assert not _parsed(file_name)[1]["filename"].startswith(".")


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("", "report"),
        ("...", "report"),
        ("../", "report"),
        ('""', "report"),
        ("\r\n", "report"),
        (" .. ", "report"),
        (".csv", "report.csv"),
        ("\x00.csv", "report.csv"),
        ('"".pdf', "report.pdf"),
        ("../.hidden", "report.hidden"),
    ],
)
def test_name_that_becomes_empty_falls_back_to_report_keeping_the_extension(
    file_name: str, expected: str
) -> None:
    assert _parsed(file_name) == ("attachment", {"filename": expected})


def test_leading_dots_never_make_a_hidden_or_parent_name() -> None:
    assert not _parsed("..report.csv")[1]["filename"].startswith(".")
