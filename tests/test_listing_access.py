"""A run is listed exactly when its caller could download it now: the download list against
the download endpoint itself, for subjects of many grants, studies, modes and the tenant."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest
from flask.testing import FlaskClient

from reporting_svc import create_app
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog.commands import upgrade_host_catalog
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings
from reporting_svc.storage import JobRecord
from reporting_svc.storage.record import MODES
from tests.support import DOWNLOAD, DOWNLOAD_LIST, OTHER_STUDY, SECRET, STUDY

THIRD_STUDY = "ABCDEF0123456789ABCDEF0123456789"
VIEW, UNBLINDED = "REPORTING_VIEW", "REPORTING_UNBLINDED_VIEW"
SCOPES = [STUDY, OTHER_STUDY, THIRD_STUDY, None]
SUBJECTS = {
    "viewer": [f"{STUDY}:test,active,training:{VIEW}"],
    "test-only": [f"{STUDY}:test:{VIEW}"],
    "unblinded-active": [f"{STUDY}:active:{VIEW},{UNBLINDED}", f"{STUDY}:test:{VIEW}"],
    "unblinded-only": [f"{OTHER_STUDY}:test,active:{UNBLINDED}"],
    "two-studies": [f"{STUDY}:training:{VIEW}", f"{OTHER_STUDY}:active,training:{VIEW}"],
    "tenant": [f"tenant:active,test:{VIEW}"],
    "tenant-and-study": [f"tenant:training:{UNBLINDED}", f"{THIRD_STUDY}:test:{VIEW}"],
    "everything": [
        f"{scope}:test,active,training:{VIEW},{UNBLINDED}"
        for scope in (STUDY, OTHER_STUDY, THIRD_STUDY, "tenant")
    ],
    "nothing": [],
}
AUTHORISERS = {"grants": "", "custom": "tests.hooks_example:make_no_drafts_authoriser"}


@pytest.fixture(scope="module", params=list(AUTHORISERS))
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One app (per authoriser) with jobs in every scope, mode, permission and two names."""
    folder = tmp_path_factory.mktemp("access")
    settings = load_settings(
        {},
        {
            "local_root": folder / "reports",
            "var_dir": folder / "var",
            "jwt_secret": SECRET,
            "audit_fsync": False,
            "authoriser": AUTHORISERS[request.param],
        },
    )
    upgrade_host_catalog(settings)  # serve's deploy step
    app = create_app(settings)
    source = folder / "report.csv"
    source.write_bytes(b"a,b\n1,2\n")
    services = app.extensions["reporting_svc"]
    jobs = [
        publish_report(
            services.store,
            source,
            report_name=name,
            mode=mode,
            study_id=scope,
            required_permission=permission,
            catalog=services.catalog,
        )
        for scope, mode, permission, name in product(
            SCOPES, MODES, [VIEW, UNBLINDED], ["Subject Data Extract", "Draft Extract"]
        )
    ]
    return app, settings, jobs


def downloadable(client: FlaskClient, token: str, jobs: list[JobRecord]) -> set[str]:
    """The jobs the download endpoint itself serves to this token."""
    headers = {"Authorization": f"Bearer {token}"}
    return {
        job.id
        for job in jobs
        if client.head(DOWNLOAD, query_string={"id": job.id}, headers=headers).status_code == 200
    }


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_listing_is_exactly_what_the_subject_may_download(world: Any, subject: str) -> None:
    app, settings, jobs = world
    client = app.test_client()
    grants = [parse_grant(text) for text in SUBJECTS[subject]]
    token = mint_token(settings, subject, grants)
    may = downloadable(client, token, jobs)
    headers = {"Authorization": f"Bearer {token}"}

    for scope, mode in product(SCOPES, [None, *MODES]):
        query = {"studyId": scope or "null", "limit": "1000", "offset": "0"}
        if mode:
            query["mode"] = mode
        response = client.get(DOWNLOAD_LIST, query_string=query, headers=headers)
        expected = {
            job.id
            for job in jobs
            if job.studyId == scope and mode in (None, job.mode) and job.id in may
        }
        holds_a_grant = any(
            grant.scope == (scope or "tenant") and (mode is None or mode in grant.modes)
            for grant in grants
        )
        if not holds_a_grant:
            assert response.status_code == 403, (subject, scope, mode)
            continue
        result = response.get_json()["result"]
        listed = [run["downloadId"] for run in result["reportRunStatus"]]
        assert sorted(listed) == sorted(expected), (subject, scope, mode)
        assert result["totalResults"] == len(expected), (subject, scope, mode)


def test_the_subjects_cover_unblinded_runs_and_the_tenant(world: Any) -> None:
    app, settings, jobs = world
    client = app.test_client()
    seen: set[tuple[str | None, str]] = set()
    for subject, texts in SUBJECTS.items():
        token = mint_token(settings, subject, [parse_grant(text) for text in texts])
        for job in jobs:
            if job.id in downloadable(client, token, [job]):
                seen.add((job.studyId, job.requiredPermission))

    assert (None, VIEW) in seen and (None, UNBLINDED) in seen
    assert (STUDY, UNBLINDED) in seen and (OTHER_STUDY, UNBLINDED) in seen
