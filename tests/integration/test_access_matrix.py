"""Black-box access matrix: every subject asks for every job over HTTP from real gunicorn.

The expected outcome of each pair is written out by hand below, from docs/api.md §1 step 4, §3
and §6 (an expired or withdrawn job is 410 only for a caller who may download it), and
never computed by the code under test. Tokens are ES256, picked from a JWKS file
by ``kid``; grants come from a grants file keyed by subject, as in production.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration import processes as p
from tests.support import DOWNLOAD, OTHER_STUDY, STUDY, public_jwk

pytestmark = pytest.mark.integration

STUDY_A = STUDY
STUDY_B = OTHER_STUDY
STUDY_C = "C0FFEE00C0FFEE00C0FFEE00C0FFEE00"
VIEW = "REPORTING_VIEW"
UNBLINDED = "UNBLINDED_VIEW"
REPORT_NAME = "Subject Data Extract"
KICKOFF = "2025-06-04T11:27:52.014Z"
KID = "matrix-2025"

# name: (scope, mode, required permission). Each job's file holds its own name.
JOBS: dict[str, tuple[str, str, str]] = {
    "A-test": (STUDY_A, "test", VIEW),
    "A-active": (STUDY_A, "active", VIEW),
    "A-training": (STUDY_A, "training", VIEW),
    "A-unblinded": (STUDY_A, "active", UNBLINDED),
    "B-active": (STUDY_B, "active", VIEW),
    "B-test": (STUDY_B, "test", VIEW),
    "C-training": (STUDY_C, "training", VIEW),
    "T-active": ("tenant", "active", VIEW),
    "T-test": ("tenant", "test", VIEW),
    "A-test-expired": (STUDY_A, "test", VIEW),
    "A-active-withdrawn": (STUDY_A, "active", VIEW),
    "T-test-withdrawn": ("tenant", "test", VIEW),
}
# Jobs that are no longer available (docs/api.md §6), and how.
EXPIRED_AT = "2025-06-05T00:00:00.000Z"
WITHDRAWN_FOR = "issued with the wrong cut-off"
GONE = {
    "A-test-expired": "expired",
    "A-active-withdrawn": "withdrawn",
    "T-test-withdrawn": "withdrawn",
}

# The grants file. "nobody" is absent from it.
GRANTS: dict[str, list[str]] = {
    "a-test-viewer": [f"{STUDY_A}:test:{VIEW}"],
    "a-all-modes-unblinded": [f"{STUDY_A}:test,active,training:{VIEW},{UNBLINDED}"],
    "a-active-viewer": [f"{STUDY_A}:active:{VIEW}"],
    "a-unblinded-only": [f"{STUDY_A}:active:{UNBLINDED}"],
    "b-active-viewer": [f"{STUDY_B}:active:{VIEW}"],
    "tenant-viewer": [f"tenant:test,active,training:{VIEW}"],
    "c-training-tenant-active": [f"{STUDY_C}:training:{VIEW}", f"tenant:active:{VIEW}"],
}

# fmt: off
COLUMNS = ("A-test", "A-active", "A-training", "A-unblinded", "B-active", "B-test",
           "C-training", "T-active", "T-test", "A-test-expired", "A-active-withdrawn",
           "T-test-withdrawn")
EXPECTED: dict[str, tuple[int, ...]] = {
    #                            A-ts A-ac A-tr A-un B-ac B-ts C-tr T-ac T-ts A-ex A-wd T-wd
    "a-test-viewer":            (200, 401, 401, 401, 401, 401, 401, 401, 401, 410, 401, 401),
    "a-all-modes-unblinded":    (200, 200, 200, 200, 401, 401, 401, 401, 401, 410, 410, 401),
    "a-active-viewer":          (401, 200, 401, 401, 401, 401, 401, 401, 401, 401, 410, 401),
    "a-unblinded-only":         (401, 401, 401, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "b-active-viewer":          (401, 401, 401, 401, 200, 401, 401, 401, 401, 401, 401, 401),
    "tenant-viewer":            (401, 401, 401, 401, 401, 401, 401, 200, 200, 401, 401, 410),
    "c-training-tenant-active": (401, 401, 401, 401, 401, 401, 200, 200, 401, 401, 401, 401),
    "nobody":                   (401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401),
}
# fmt: on


@dataclass(frozen=True)
class Service:
    base: str
    job_ids: dict[str, str]
    tokens: dict[str, str]

    def get(self, subject: str, job: str, **filters: str) -> requests.Response:
        return requests.get(
            self.base + DOWNLOAD,
            params={"id": self.job_ids[job], **filters},
            headers={"Authorization": f"Bearer {self.tokens[subject]}"},
            timeout=30,
        )


def publish(env: dict[str, str], folder: Path, name: str) -> str:
    scope, mode, permission = JOBS[name]
    path = folder / f"{name}.csv"
    path.write_text(name + "\n")
    scope_args = ["--tenant"] if scope == "tenant" else ["--study-id", scope]
    expired = GONE.get(name) == "expired"
    expiry = ["--expires-at", EXPIRED_AT, "--allow-past-expiry"] if expired else []
    result = p.run_cli(
        "publish", str(path), "--report-name", REPORT_NAME, "--mode", mode, *scope_args,
        "--required-permission", permission, "--kickoff", KICKOFF, *expiry, env=env,
    )  # fmt: skip
    job_id: str = json.loads(result.stdout)["id"]
    if GONE.get(name) == "withdrawn":
        p.run_cli("withdraw", job_id, "--reason", WITHDRAWN_FOR, "--by", "ops", env=env)
    return job_id


def token_for(key: ec.EllipticCurvePrivateKey, subject: str) -> str:
    """An ES256 token whose own grants claim opens everything: the grants file must win."""
    now = int(time.time())
    everything = [f"{scope}:test,active,training:{VIEW},{UNBLINDED}" for scope in
                  (STUDY_A, STUDY_B, STUDY_C, "tenant")]  # fmt: skip
    claims = {
        "sub": subject, "iss": "reporting-svc", "aud": "reporting-svc",
        "iat": now, "nbf": now, "exp": now + 3600, "grants": everything,
    }  # fmt: skip
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID})


@pytest.fixture(scope="module")
def service(module_processes: p.Processes, tmp_path_factory: pytest.TempPathFactory) -> Service:
    """One gunicorn with the nine jobs, a JWKS of one ES256 key, and the grants file."""
    folder = tmp_path_factory.mktemp("matrix")
    key = ec.generate_private_key(ec.SECP256R1())
    jwks, grants = folder / "jwks.json", folder / "grants.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(key, KID)]}))
    grants.write_text(json.dumps(GRANTS))
    env = p.service_env(folder)
    del env["REPORTING_SVC_JWT_SECRET"]
    env.update(REPORTING_SVC_JWT_JWKS_FILE=str(jwks), REPORTING_SVC_GRANTS_FILE=str(grants))
    job_ids = {name: publish(env, folder, name) for name in JOBS}
    base = module_processes.serve(env)
    return Service(base, job_ids, {subject: token_for(key, subject) for subject in EXPECTED})


def test_the_expected_table_covers_every_published_job() -> None:
    assert sorted(COLUMNS) == sorted(JOBS)
    assert all(len(row) == len(COLUMNS) for row in EXPECTED.values())
    assert len(EXPECTED) >= 5 and len(COLUMNS) >= 8


def test_every_subject_gets_exactly_the_jobs_the_table_allows(service: Service) -> None:
    actual: dict[str, tuple[int, ...]] = {}
    for subject in EXPECTED:
        statuses = []
        for job in COLUMNS:
            response = service.get(subject, job)
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert response.content == f"{job}\n".encode(), (subject, job)
            elif response.status_code == 410:
                assert response.json()["errorData"]["details"] == (
                    f"expired at {EXPIRED_AT}"
                    if GONE[job] == "expired"
                    else f"withdrawn: {WITHDRAWN_FOR}"
                ), (subject, job)
            elif response.status_code == 401:
                challenge = response.headers["WWW-Authenticate"]
                assert challenge == 'Bearer error="insufficient_scope"', (subject, job)
                assert JOBS[job][2] in response.json()["errorData"]["details"], (subject, job)
        actual[subject] = tuple(statuses)
    assert actual == EXPECTED


DENIED = ["A-test", "A-active", "A-training", "B-test", "C-training", "T-active", "T-test",
          "A-test-expired", "A-active-withdrawn", "T-test-withdrawn"]  # fmt: skip


@pytest.mark.parametrize("subject", ["b-active-viewer", "nobody"])
def test_denials_across_studies_and_modes_are_indistinguishable(
    service: Service, subject: str
) -> None:
    responses = {job: service.get(subject, job) for job in DENIED}
    assert {job: r.status_code for job, r in responses.items()} == dict.fromkeys(DENIED, 401)
    bodies = {json.dumps(r.json(), sort_keys=True) for r in responses.values()}
    assert len(bodies) == 1, bodies
    assert {r.headers["WWW-Authenticate"] for r in responses.values()} == {
        'Bearer error="insufficient_scope"'
    }
    for body in bodies:
        assert all(study not in body for study in (STUDY_A, STUDY_B, STUDY_C))
        assert REPORT_NAME not in body


# Filters a caller could guess for job A-active, and what a caller entitled to it gets.
GUESSES: list[tuple[dict[str, str], int]] = [
    ({"studyId": STUDY_A}, 200),
    ({"studyId": STUDY_B}, 404),
    ({"studyId": "null"}, 404),
    ({"mode": "active"}, 200),
    ({"mode": "test"}, 404),
    ({"reportName": REPORT_NAME}, 200),
    ({"reportName": "Unblinded Listing"}, 404),
    ({"rptKickoffDatetime": KICKOFF}, 200),
    ({"rptKickoffDatetime": "2024-01-01T00:00:00Z"}, 404),
    ({"studyId": STUDY_A, "mode": "active", "reportName": REPORT_NAME}, 200),
]


@pytest.mark.parametrize(("filters", "entitled_status"), GUESSES)
def test_filter_guesses_do_not_change_a_denial(
    service: Service, filters: dict[str, str], entitled_status: int
) -> None:
    baseline = service.get("b-active-viewer", "A-active")
    guessed = service.get("b-active-viewer", "A-active", **filters)
    assert guessed.status_code == 401
    assert guessed.json() == baseline.json()
    assert guessed.headers["WWW-Authenticate"] == baseline.headers["WWW-Authenticate"]
    # The same filters do reach the job for a caller allowed to see it.
    assert service.get("a-active-viewer", "A-active", **filters).status_code == entitled_status


@pytest.mark.parametrize(("filters", "entitled_status"), GUESSES)
def test_filter_guesses_on_a_withdrawn_job_give_what_they_give_on_a_live_one(
    service: Service, filters: dict[str, str], entitled_status: int
) -> None:
    denied = service.get("b-active-viewer", "A-active-withdrawn", **filters)
    entitled = service.get("a-active-viewer", "A-active-withdrawn", **filters)

    assert denied.status_code == 401
    assert denied.json() == service.get("b-active-viewer", "A-active", **filters).json()
    assert entitled.status_code == (410 if entitled_status == 200 else 404)
