"""Names from the server made safe for every OS, and the download id for a second run."""

from __future__ import annotations

import pytest

from reporting_svc.fetch.naming import MAX_NAME_BYTES, safe_file_name, with_download_id


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("Subject Data Extract.csv", "Subject Data Extract.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("C:\\reports\\x.pdf", "x.pdf"),
        ("CON.csv", "CON_.csv"),
        ("nul", "nul_"),
        ("com1.txt", "com1_.txt"),
        ("two\nlines.csv", "twolines.csv"),
        ("tab\there\r.csv", "tabhere.csv"),
        ('a:b*c?<d>|e".csv', "abcde.csv"),
        (".bashrc", "bashrc"),
        ("trailing. ", "trailing"),
        ("..", "report"),
        ("/", "report"),
        ("", "report"),
        (None, "report"),
        ("\u202eexe.csv", "exe.csv"),
        ("line\u2028break\u2029.csv", "linebreak.csv"),
        ("étude été.csv", "étude été.csv"),
    ],
)
def test_hostile_names_become_plain_names(raw: str | None, safe: str) -> None:
    assert safe_file_name(raw) == safe


@pytest.mark.parametrize("raw", ["x" * 296 + ".csv", "é" * 300 + ".xlsx", "y" * 400])
def test_long_names_are_cut_to_a_byte_limit_keeping_the_extension(raw: str) -> None:
    safe = safe_file_name(raw)

    assert len(safe.encode()) <= MAX_NAME_BYTES
    assert safe.endswith(raw[-5:].lstrip("xéy")) and safe[0] == raw[0]


def test_a_second_run_of_a_name_gets_its_download_id_before_the_extension() -> None:
    assert with_download_id("extract.csv", "6A7C") == "extract-6A7C.csv"
    assert with_download_id("report", "6A7C") == "report-6A7C"
