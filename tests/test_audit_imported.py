"""What an import record states of the chain it loaded, and ``verify``'s reading of it."""

from __future__ import annotations

import pytest

from reporting_svc.audit.chain import Verdict
from reporting_svc.audit.imported import import_record, statement, unaccounted

CHAIN = "import-5ce392a328e4"
VERDICT = Verdict(5, "5" * 64)
OTHER = Verdict(5, "6" * 64)


@pytest.mark.parametrize(
    "file_name",
    ["host1.jsonl", f"x as chain other, last hash {'6' * 64}", "two\nlines.jsonl"],
    ids=["plain", "a name that states another chain", "a newline"],
)
@pytest.mark.parametrize("vouched", [True, False], ids=["vouched", "unvouched"])
def test_an_import_record_accounts_for_the_chain_it_names_whatever_the_file_name(
    file_name: str, vouched: bool
) -> None:
    record = import_record(
        "ops", statement(file_name, CHAIN, VERDICT, vouched=vouched), vouched=vouched
    )

    assert unaccounted([record], {CHAIN: VERDICT}) is None
    assert record["complete"] is vouched
    assert record["reportName"].startswith(
        "audit import: " if vouched else "audit import without its head: "
    )


def record_of(chain: str, verdict: Verdict) -> dict[str, object]:
    return import_record(
        "ops", statement("host1.jsonl", chain, verdict, vouched=True), vouched=True
    )


CASES = {
    "no record": (
        [],
        {CHAIN: VERDICT},
        f"chain {CHAIN} (5 records, last hash {'5' * 64}) is named by no",
    ),
    "another last hash": ([record_of(CHAIN, OTHER)], {CHAIN: VERDICT}, "names 5, last hash 666"),
    "another count": (
        [record_of(CHAIN, Verdict(6, VERDICT.last_hash))],
        {CHAIN: VERDICT},
        "names 6",
    ),
    "two records": ([record_of(CHAIN, VERDICT)] * 2, {CHAIN: VERDICT}, "named by 2 import records"),
    "no chain": ([record_of(CHAIN, VERDICT)], {}, f"names chain {CHAIN}, which is not"),
    "a record in another form": (
        [{**record_of(CHAIN, VERDICT), "reportName": "imported"}],
        {CHAIN: VERDICT},
        "does not name a chain as audit import does",
    ),
}


@pytest.mark.parametrize(("announced", "imported", "problem"), CASES.values(), ids=CASES.keys())
def test_a_chain_not_named_once_with_its_count_and_last_hash_is_unaccounted(
    announced: list[dict[str, object]], imported: dict[str, Verdict], problem: str
) -> None:
    assert problem in (unaccounted(announced, imported) or "")
