"""A report's file name: one rule for publish, the listing and ``Content-Disposition``."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.http import parse_options_header

from reporting_svc.catalog import Catalog
from reporting_svc.catalog.rebuild import rebuild
from reporting_svc.storage import JobRecord, Store
from reporting_svc.storage.file_names import (
    FALLBACK_NAME,
    check_file_name,
    is_safe_file_name,
    shown_file_name,
)
from tests.support import STUDY

CONTENT = b"subjectId,visit\n"
UNSAFE = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\boot.ini",
    "C:\\reports\\x.csv",
    "C:x.csv",
    "reports/x.csv",
    "x.csv\n",
    "line\nbreak.csv",
    "a\r\nSet-Cookie: x=1.csv",
    "tab\there.csv",
    "nul\x00.csv",
    "esc\x1b[2J.csv",
    "x\u202ecsv.exe",
    "zero\u200bwidth.csv",
    "para\u2029graph.csv",
    '"quoted".csv',
    "what?.csv",
    "a*b.csv",
    "a<b>.csv",
    "a|b.csv",
    "",
    ".",
    "..",
    ".hidden",
    ".csv",
    " padded.csv",
    "padded.csv ",
    "trailing.",
    "CON",
    "nul.csv",
    "x" * 252 + ".csv",
    "é" * 128,
    "..\uff0f..\uff0fetc\uff0fpasswd",  # fullwidth solidus: NFKC makes it "/"
    "\u2025\uff0fsecret.csv",  # two-dot leader: NFKC makes it ".."
    "\u2025csv",
    "a\uff3cb.csv",  # fullwidth reverse solidus
    "a\ufe55b.csv",  # small colon
]
SAFE = [
    "report.csv",
    "Subject Data Extract.csv",
    "Übersicht 2025.csv",
    "報告 2025.xlsx",
    "a;b=c.csv",
    "version 1.2.3.pdf",
    "x" * 251 + ".csv",
    "no-extension",
]


@pytest.mark.parametrize("name", UNSAFE)
def test_an_unsafe_name_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ValueError, match="must be 1 to 255 bytes of printable characters"):
        check_file_name(name)


@pytest.mark.parametrize("name", SAFE)
def test_a_plain_name_is_kept_as_it_is(name: str) -> None:
    assert check_file_name(name) == name
    assert shown_file_name(name) == name


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("C:x.csv", "Cx.csv"),
        ("line\nbreak.csv", "linebreak.csv"),
        ('"quoted".csv', "quoted.csv"),
        ("..\uff0f..\uff0fetc\uff0fpasswd", "report.etcpasswd"),
        ("\u2025csv", "report.csv"),
        (".csv", "report.csv"),
        ("../.hidden", "report.hidden"),
        ("", FALLBACK_NAME),
        ("../", FALLBACK_NAME),
        ("CON", "CON_"),
        ("x" * 300 + ".csv", "x" * 251 + ".csv"),
    ],
)
def test_an_unsafe_stored_name_is_shown_cleaned(name: str, shown: str) -> None:
    assert shown_file_name(name) == shown


@pytest.mark.parametrize("name", UNSAFE)
def test_every_shown_name_is_safe(name: str) -> None:
    assert is_safe_file_name(shown_file_name(name))


@given(st.text(max_size=300))
def test_any_text_is_shown_as_a_safe_name(name: str) -> None:
    assert is_safe_file_name(shown_file_name(name))


# The listing and the download show a stored name alike, however it was written.


@pytest.fixture
def stored_around_the_service(
    publish: Callable[..., JobRecord], store: Store
) -> Callable[[str], JobRecord]:
    """A job whose stored record carries ``name``, written to the store directly."""

    def write(name: str) -> JobRecord:
        published = publish(CONTENT)
        record = dataclasses.replace(published, id=published.id[:-4] + "0000", fileName=name)
        store.put(record, io.BytesIO(CONTENT))
        return record

    return write


@pytest.mark.parametrize("name", ["../../etc/passwd", "x\n.csv", ".hidden", "C:x.csv", "ok.csv"])
@pytest.mark.parametrize("index", ["add", "rebuild"])
def test_listing_and_download_name_a_stored_file_alike(
    stored_around_the_service: Callable[[str], JobRecord],
    store: Store,
    catalog: Catalog,
    listing: Callable[..., Any],
    download: Callable[..., Any],
    token: Callable[..., str],
    name: str,
    index: str,
) -> None:
    record = stored_around_the_service(name)
    if index == "add":
        catalog.add(record)
    else:
        rebuild(store, catalog)
    caller = token(f"{STUDY}:test:REPORTING_VIEW")

    runs = listing({"studyId": STUDY, "limit": "10", "offset": "0"}, caller).get_json()
    listed = {run["downloadId"]: run["fileName"] for run in runs["result"]["reportRunStatus"]}
    answer = download({"id": record.id}, caller)

    assert answer.status_code == 200
    saved_as = parse_options_header(answer.headers["Content-Disposition"])[1]["filename"]
    assert listed[record.id] == saved_as == shown_file_name(name)
    assert is_safe_file_name(saved_as)
