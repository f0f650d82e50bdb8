"""The default grant authoriser, and the authenticator and authoriser hooks named in settings."""

from __future__ import annotations

import pytest

from reporting_svc import create_app
from reporting_svc.auth import (
    Grant,
    PermissionsAuthoriser,
    Principal,
    make_authenticator,
    make_authoriser,
)
from reporting_svc.auth.authoriser import GrantAuthoriser, as_authoriser
from reporting_svc.auth.tokens import JwtAuthenticator
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import SettingsError
from reporting_svc.storage import JobRecord
from tests.hooks_example import API_KEY, API_KEY_HEADER, OnlyTestModeAuthoriser
from tests.support import DOWNLOAD, OTHER_STUDY, STUDY, error_of

JOB = "6A7C29DD011241DFBE1B64399283C860"
ACTIVE_JOB = "11111111111111111111111111111111"
UNBLINDED = "REPORTING_UNBLINDED_VIEW"


def job(
    study_id: str | None = STUDY, mode: str = "test", permission: str = "REPORTING_VIEW"
) -> JobRecord:
    return JobRecord(
        id=JOB,
        studyId=study_id,
        mode=mode,
        reportName="Subject Data Extract",
        rptKickoffDatetime="2025-06-04T11:27:52.014Z",
        rptFormat="CSV",
        status="COMPLETED",
        fileName="report.csv",
        contentType="text/csv",
        size=1,
        sha256="0" * 64,
        completedAt="2025-06-04T11:30:00.000Z",
        requiredPermission=permission,
    )


def caller(*grants: Grant) -> Principal:
    return Principal("alice", grants)


def grant(scope: str, modes: set[str], permissions: set[str] | None = None) -> Grant:
    return Grant(scope, frozenset(modes), frozenset(permissions or {"REPORTING_VIEW"}))


@pytest.fixture
def authorise(settings):
    return GrantAuthoriser(settings)


def test_study_grant_opens_that_studys_jobs_in_its_modes(authorise):
    alice = caller(grant(STUDY, {"test", "training"}))
    assert authorise(alice, job(mode="test"))
    assert authorise(alice, job(mode="training"))


def test_study_grant_does_not_open_other_modes(authorise):
    assert not authorise(caller(grant(STUDY, {"test"})), job(mode="active"))


def test_study_grant_does_not_open_another_study(authorise):
    assert not authorise(caller(grant(STUDY, {"test"})), job(study_id=OTHER_STUDY))


def test_caller_without_grants_opens_nothing(authorise):
    assert not authorise(caller(), job())
    assert not authorise(caller(), job(study_id=None))


def test_tenant_grant_opens_tenant_jobs(authorise):
    assert authorise(caller(grant("tenant", {"active"})), job(study_id=None, mode="active"))


def test_tenant_grant_does_not_open_study_jobs(authorise):
    assert not authorise(caller(grant("tenant", {"test", "active", "training"})), job())


def test_study_grant_never_opens_tenant_jobs(authorise):
    every_mode = {"test", "active", "training"}
    alice = caller(grant(STUDY, every_mode), grant(OTHER_STUDY, every_mode))
    assert not authorise(alice, job(study_id=None))


def test_tenant_grant_in_another_mode_does_not_open_a_tenant_job(authorise):
    assert not authorise(caller(grant("tenant", {"test"})), job(study_id=None, mode="active"))


def test_job_requiring_another_permission_needs_that_permission(authorise):
    restricted = job(permission=UNBLINDED)
    assert not authorise(caller(grant(STUDY, {"test"})), restricted)
    assert authorise(caller(grant(STUDY, {"test"}, {UNBLINDED})), restricted)


def test_permission_for_another_study_does_not_count(authorise):
    alice = caller(grant(STUDY, {"test"}), grant(OTHER_STUDY, {"test"}, {UNBLINDED}))
    assert not authorise(alice, job(permission=UNBLINDED))


def test_grant_authoriser_lists_where_the_caller_holds_a_grant_of_any_permission(authorise):
    alice = caller(grant(STUDY, {"test"}, {UNBLINDED}))
    assert authorise.may_list(alice, STUDY, "test")
    assert not authorise.may_list(alice, STUDY, "active")
    assert not authorise.may_list(alice, "tenant", "test")


def test_a_plain_callable_hook_decides_downloads_and_lists_by_the_grants():
    authorise = as_authoriser(lambda principal, record: True)
    alice = caller(grant(STUDY, {"test"}))
    assert authorise(alice, job(mode="active"))
    assert authorise.may_list(alice, STUDY, "test")
    assert not authorise.may_list(alice, STUDY, "active")
    assert not authorise.may_list(alice, OTHER_STUDY, "test")


class NamingPermissions:
    """A hook with ``permissions`` and no ``may_list``: test mode opens to everyone."""

    def __call__(self, principal: Principal, record: JobRecord) -> bool:
        return record.mode == "test"

    def permissions(self, principal: Principal, scope: str, mode: str) -> frozenset[str]:
        return frozenset({"REPORTING_VIEW"} if mode == "test" else ())


def test_a_hook_naming_permissions_lists_where_it_names_any_and_keeps_the_catalog_query():
    authorise = as_authoriser(NamingPermissions())
    assert isinstance(authorise, PermissionsAuthoriser)
    assert authorise.may_list(caller(), STUDY, "test")
    assert not authorise.may_list(caller(), STUDY, "active")
    assert authorise.permissions(caller(), STUDY, "test") == {"REPORTING_VIEW"}


def test_a_hook_with_may_list_is_the_authoriser_as_it_is(settings):
    hook = OnlyTestModeAuthoriser(settings)
    assert as_authoriser(hook) is hook


def test_default_hooks_are_the_jwt_authenticator_and_grant_authoriser(settings):
    assert isinstance(make_authenticator(settings), JwtAuthenticator)
    assert isinstance(make_authoriser(settings), GrantAuthoriser)


@pytest.fixture
def hooked_client(make_settings, tmp_path):
    settings = make_settings(
        authenticator="tests.hooks_example:make_authenticator",
        authoriser="tests.hooks_example:make_authoriser",
    )
    app = create_app(settings)
    store = app.extensions["reporting_svc"].store
    source = tmp_path / "report.csv"
    source.write_bytes(b"a,b\n")
    for mode, job_id in (("test", JOB), ("active", ACTIVE_JOB)):
        publish_report(
            store, source, report_name="Extract", mode=mode, study_id=STUDY, job_id=job_id
        )
    return app.test_client()


def test_authenticator_hook_accepts_its_own_credentials(hooked_client):
    response = hooked_client.get(
        DOWNLOAD, query_string={"id": JOB}, headers={API_KEY_HEADER: API_KEY}
    )
    assert response.status_code == 200
    assert response.data == b"a,b\n"


def test_authenticator_hook_replaces_the_jwt_authenticator(hooked_client, token):
    bearer = {"Authorization": f"Bearer {token(f'{STUDY}:test:REPORTING_VIEW')}"}
    response = hooked_client.get(DOWNLOAD, query_string={"id": JOB}, headers=bearer)
    assert response.status_code == 401
    assert error_of(response)["details"] == "an API key is required"


def test_authoriser_hook_decides_access(hooked_client):
    response = hooked_client.get(
        DOWNLOAD, query_string={"id": ACTIVE_JOB}, headers={API_KEY_HEADER: API_KEY}
    )
    assert response.status_code == 401
    assert "REPORTING_VIEW" in error_of(response)["details"]


@pytest.mark.parametrize(
    "path",
    [
        "tests.no_such_module:make_authenticator",
        "tests.hooks_example:no_such_factory",
        "tests.hooks_example",
        ":make_authenticator",
    ],
)
@pytest.mark.parametrize("setting", ["authenticator", "authoriser"])
def test_unimportable_hook_fails_at_app_creation(make_settings, setting, path):
    with pytest.raises(SettingsError, match=f"REPORTING_SVC_{setting.upper()}"):
        create_app(make_settings(**{setting: path}))
