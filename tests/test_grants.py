"""Parsing grants from the command line, token claims and the grants file."""

from __future__ import annotations

import json

import pytest

from reporting_svc.auth.grants import (
    Grant,
    GrantError,
    grant_from_json,
    load_grants_file,
    parse_grant,
)
from tests.support import OTHER_STUDY, STUDY

DASHED_STUDY = "cfd8129a-430a-473c-8a02-f4ba5daad865"


def test_study_grant_with_two_modes():
    assert parse_grant(f"{STUDY}:test,active:REPORTING_VIEW") == Grant(
        STUDY, frozenset({"test", "active"}), frozenset({"REPORTING_VIEW"})
    )


def test_tenant_grant_with_two_permissions():
    assert parse_grant("tenant:active:A,B") == Grant(
        "tenant", frozenset({"active"}), frozenset({"A", "B"})
    )


def test_tenant_scope_in_any_letter_case():
    assert parse_grant("TENANT:test:A").scope == "tenant"


@pytest.mark.parametrize("study", [STUDY.lower(), DASHED_STUDY])
def test_study_id_is_normalised(study):
    assert parse_grant(f"{study}:test:A").scope == STUDY


def test_modes_are_normalised_and_blanks_ignored():
    grant = parse_grant(f"{STUDY}: Test ,TRAINING,:A, B")
    assert grant.modes == frozenset({"test", "training"})
    assert grant.permissions == frozenset({"A", "B"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{STUDY}:test", "SCOPE:MODES:PERMISSIONS"),
        (f"{STUDY}:test:A:B", "SCOPE:MODES:PERMISSIONS"),
        ("", "SCOPE:MODES:PERMISSIONS"),
        ("study-1:test:A", "scope"),
        (f"{STUDY}/..:test:A", "scope"),
        (f"{STUDY}:production:A", "modes"),
        (f"{STUDY}::A", "modes"),
        (f"{STUDY}:test:", "permission"),
        (f"{STUDY}:test: , ", "permission"),
    ],
)
def test_bad_grant_is_refused(text, message):
    with pytest.raises(GrantError, match=message):
        parse_grant(text)


def test_grant_claim_round_trips():
    grant = parse_grant(f"{STUDY}:test,active:B,A")
    assert grant.to_claim() == {
        "scope": STUDY,
        "modes": ["active", "test"],
        "permissions": ["A", "B"],
    }
    assert grant_from_json(grant.to_claim()) == grant


@pytest.mark.parametrize(
    "value",
    [
        {"scope": STUDY, "modes": "test", "permissions": ["A"]},
        {"scope": STUDY, "modes": ["test"]},
        {"modes": ["test"], "permissions": ["A"]},
        42,
        None,
    ],
)
def test_malformed_grant_object_is_refused(value):
    with pytest.raises(GrantError):
        grant_from_json(value)


def test_grants_file_reads_strings_and_objects(tmp_path):
    path = tmp_path / "grants.json"
    path.write_text(
        json.dumps(
            {
                "alice": [
                    f"{STUDY.lower()}:test:REPORTING_VIEW",
                    {"scope": "tenant", "modes": ["ACTIVE"], "permissions": ["REPORTING_VIEW"]},
                ],
                "bob": [{"scope": OTHER_STUDY, "modes": ["training"], "permissions": ["X"]}],
                "carol": [],
            }
        )
    )
    assert load_grants_file(path) == {
        "alice": (
            Grant(STUDY, frozenset({"test"}), frozenset({"REPORTING_VIEW"})),
            Grant("tenant", frozenset({"active"}), frozenset({"REPORTING_VIEW"})),
        ),
        "bob": (Grant(OTHER_STUDY, frozenset({"training"}), frozenset({"X"})),),
        "carol": (),
    }


@pytest.mark.parametrize(
    "content",
    [
        json.dumps([f"{STUDY}:test:A"]),
        json.dumps({"alice": f"{STUDY}:test:A"}),
        json.dumps({"alice": [f"{STUDY}:prod:A"]}),
    ],
)
def test_bad_grants_file_is_refused(tmp_path, content):
    path = tmp_path / "grants.json"
    path.write_text(content)
    with pytest.raises(GrantError):
        load_grants_file(path)
