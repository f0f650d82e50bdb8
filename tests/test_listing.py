"""The download list (docs/api.md §5): parameters, authorisation, the page and its audit record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from reporting_svc import create_app
from reporting_svc.catalog.tables import jobs
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings
from reporting_svc.storage import JobRecord, layout
from reporting_svc.storage.record import parse_instant
from tests.support import DOWNLOAD_LIST, OTHER_STUDY, STUDY, error_of

GRANT = f"{STUDY}:test:REPORTING_VIEW"
REPORT = "E341BB429E7D44E3989D113A504F3BF8"
UNBLINDED = "REPORTING_UNBLINDED_VIEW"


def query(**values: str) -> dict[str, str]:
    return {"studyId": STUDY, "limit": "10", "offset": "0", **values}


def list_with(app: Flask, token: str) -> Any:
    """The default query on an app of the test's own settings."""
    headers = {"Authorization": f"Bearer {token}"}
    return app.test_client().get(DOWNLOAD_LIST, query_string=query(), headers=headers)


def listed_ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [run["downloadId"] for run in response.get_json()["result"]["reportRunStatus"]]


@pytest.fixture
def caller(token: Any) -> str:
    return token(GRANT)


def test_a_listing_is_the_envelope_with_the_page_and_its_runs(listing, publish, caller):
    record = publish(rpt_id=REPORT, search_spec="site=01", kickoff="2025-06-04T11:27:52.014Z")

    response = listing(query(), caller)

    body = response.get_json()
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Request-ID"]
    assert (body["status"], body["errorData"]) == ("success", None)
    assert body["result"] == {
        "hasMore": "false",
        "totalResults": 1,
        "count": 1,
        "limit": 10,
        "offset": 0,
        "reportId": None,
        "reportRunStatus": [
            {
                "downloadId": record.id,
                "reportId": REPORT,
                "reportName": record.reportName,
                "studyId": STUDY,
                "mode": "test",
                "rptFormat": "CSV",
                "status": "COMPLETED",
                "rptKickoffDatetime": "2025-06-04T11:27:52.014Z",
                "completedAt": record.completedAt,
                "expiresAt": None,
                "currSearchSpec": "site=01",
                "currSortSpec": None,
                "fileName": record.fileName,
                "contentType": "text/csv",
                "size": record.size,
                "sha256": record.sha256,
            }
        ],
    }


def test_runs_are_newest_first_then_by_id_and_paged(listing, publish, caller):
    kickoffs = ["2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z", "2025-03-01T02:00:00+02:00"]
    jobs = [publish(kickoff=kickoff) for kickoff in kickoffs]
    tied = sorted(job.id for job in jobs[1:])

    first = listing(query(limit="2"), caller).get_json()["result"]
    rest = listing(query(limit="2", offset="2"), caller).get_json()["result"]

    assert [run["downloadId"] for run in first["reportRunStatus"]] == tied
    assert (first["hasMore"], first["count"], first["totalResults"]) == ("true", 2, 3)
    assert [run["downloadId"] for run in rest["reportRunStatus"]] == [jobs[0].id]
    assert (rest["hasMore"], rest["count"], rest["totalResults"]) == ("false", 1, 3)


def test_instants_are_listed_in_one_form_equal_to_the_instants_published(listing, publish, caller):
    typed = ["2025-07-01T10:00:00Z", "2025-07-01T14:00:01+02:00", "2025-07-01T10:00:02.5-02:00"]
    for kickoff in typed:
        publish(kickoff=kickoff, expires_at="2999-01-01T01:00:00+01:00")

    runs = listing(query(), caller).get_json()["result"]["reportRunStatus"]

    shown = [run["rptKickoffDatetime"] for run in reversed(runs)]
    assert shown == [
        "2025-07-01T10:00:00.000Z",
        "2025-07-01T12:00:01.000Z",
        "2025-07-01T12:00:02.500Z",
    ]
    assert [parse_instant(text) for text in shown] == [parse_instant(text) for text in typed]
    assert {run["expiresAt"] for run in runs} == {"2999-01-01T00:00:00.000Z"}


def test_records_stored_in_older_forms_are_answered_in_the_one_form(
    listing, download, publish, caller, catalog, store, settings: Settings
):
    """A store and catalog written before instants were canonical (offsets, no
    milliseconds, no zone: read as UTC, as that publish did) need no migration."""
    job = publish(kickoff="2025-07-01T10:00:00Z")
    old = {
        **job.__dict__,
        "rptKickoffDatetime": "2025-07-01T12:00:00+02:00",
        "completedAt": "2025-07-01T10:05:00Z",
        "expiresAt": "2999-01-01T00:00:00",
    }
    text = json.dumps(old)
    (settings.local_root / layout.record_key(job.id)).write_text(text)
    with catalog.engines.writing() as connection:
        connection.execute(sa.update(jobs).where(jobs.c.id == job.id).values(record=text))

    [run] = listing(query(), caller).get_json()["result"]["reportRunStatus"]
    answered = download({"id": job.id, "rptKickoffDatetime": "2025-07-01T10:00:00.000Z"}, caller)

    canonical = ("2025-07-01T10:00:00.000Z", "2025-07-01T10:05:00.000Z", "2999-01-01T00:00:00.000Z")
    assert (run["rptKickoffDatetime"], run["completedAt"], run["expiresAt"]) == canonical
    stored = store.get_record(job.id)
    assert (stored.rptKickoffDatetime, stored.completedAt, stored.expiresAt) == canonical
    assert answered.status_code == 200


def test_an_offset_past_the_end_is_an_empty_page(listing, publish, caller):
    publish()

    result = listing(query(offset="5"), caller).get_json()["result"]

    assert (result["reportRunStatus"], result["count"], result["totalResults"]) == ([], 0, 1)
    assert result["hasMore"] == "false"


def test_filters_select_by_mode_report_id_and_name(listing, publish, token):
    wanted = publish(rpt_id=REPORT, report_name="Visit Summary")
    publish(rpt_id=REPORT)
    publish(report_name="Visit Summary")
    publish(mode="active", rpt_id=REPORT, report_name="Visit Summary")
    caller = token(f"{STUDY}:test,active:REPORTING_VIEW")

    response = listing(query(rptId=REPORT.lower(), reportName="Visit Summary", mode="TEST"), caller)

    assert listed_ids(response) == [wanted.id]
    assert response.get_json()["result"]["reportId"] == REPORT


def test_runs_the_caller_may_not_download_are_neither_listed_nor_counted(listing, publish, token):
    shown = publish()
    publish(required_permission=UNBLINDED)
    publish(mode="active")
    publish(study_id=OTHER_STUDY)
    publish(study_id=None)

    response = listing(query(), token(GRANT, f"{OTHER_STUDY}:test:{UNBLINDED}"))

    assert listed_ids(response) == [shown.id]
    assert response.get_json()["result"]["totalResults"] == 1


def test_tenant_reports_are_listed_for_an_empty_or_null_study_with_a_tenant_grant(
    listing, publish, token
):
    tenant = publish(study_id=None)
    publish()
    caller = token("tenant:test:REPORTING_VIEW", GRANT)

    for study in ("", "null", "NULL"):
        assert listed_ids(listing(query(studyId=study), caller)) == [tenant.id]


def test_expired_runs_are_not_listed(listing, catalog, publish, caller):
    kept = publish()
    catalog.add(expiring(kept, days=1, job_id="1" * 32))
    catalog.add(expiring(kept, days=-1, job_id="2" * 32))

    assert sorted(listed_ids(listing(query(), caller))) == sorted([kept.id, "1" * 32])


def expiring(record: JobRecord, *, days: int, job_id: str) -> JobRecord:
    expires = (datetime.now(UTC) + timedelta(days=days)).isoformat()
    return JobRecord(**{**record.__dict__, "id": job_id, "expiresAt": expires})


def test_a_listing_request_writes_nothing_to_the_catalog(listing, catalog, publish, caller):
    """The service's database role may only read the catalog (docs/deploying.md: PostgreSQL roles),
    even when the counts' horizon is a day behind."""
    kept = publish()
    catalog.add(expiring(kept, days=-1, job_id="2" * 32))
    catalog.recount(datetime.now(UTC) - timedelta(days=2))
    written: list[str] = []

    @sa.event.listens_for(catalog.engines.get(), "before_cursor_execute")
    def _note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE")):
            written.append(statement)

    response = listing(query(), caller)

    assert listed_ids(response) == [kept.id]
    assert response.get_json()["result"]["totalResults"] == 1
    assert written == []


@pytest.mark.parametrize(
    ("grants", "values"),
    [
        ([f"{OTHER_STUDY}:test:REPORTING_VIEW"], {}),
        (["tenant:test:REPORTING_VIEW"], {}),
        ([f"{STUDY}:active:REPORTING_VIEW"], {"mode": "test"}),
        ([f"{STUDY}:test:REPORTING_VIEW"], {"studyId": "null"}),
        ([], {}),
    ],
    ids=["other-study", "tenant-for-study", "other-mode", "study-for-tenant", "no-grants"],
)
def test_no_grant_for_the_scope_or_mode_is_403(listing, token, grants, values):
    response = listing(query(**values), token(*grants))

    error = error_of(response)
    assert response.status_code == 403
    assert error["errorMessage"] == "User not authorized to view download list."


def test_a_grant_of_another_permission_for_the_scope_lists_nothing_rather_than_403(
    listing, publish, token
):
    publish()

    response = listing(query(), token(f"{STUDY}:test:{UNBLINDED}"))

    assert listed_ids(response) == []


def test_no_token_is_401_before_the_parameters_are_checked(listing):
    response = listing({"limit": "0"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("missing", ["studyId", "limit", "offset"])
def test_a_missing_required_parameter_is_insufficient(listing, caller, missing):
    values = query()
    del values[missing]

    error = error_of(listing(values, caller))

    assert error["errorMessage"] == "Insufficient parameters"
    assert error["details"] == f"{missing}: is required"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", "1001"),
        ("limit", "-1"),
        ("limit", "1e3"),
        ("limit", "+5"),
        ("limit", " 5"),
        ("limit", "5 "),
        ("limit", "\u0665"),  # ARABIC-INDIC DIGIT FIVE: int() would take it
        ("limit", ""),
        ("offset", "-1"),
        ("offset", str(2**31)),
        ("offset", "1e3"),
        ("offset", "+5"),
        ("offset", " 5"),
        ("offset", "\u0665"),
        ("offset", "0x10"),
        ("studyId", "not-a-guid"),
        ("mode", "production"),
        ("rptId", "E341BB42"),
        ("reportName", "a\nb"),
        ("reportName", "x" * 256),
    ],
)
def test_a_bad_value_is_invalid_and_named(listing, caller, name, value):
    error = error_of(listing(query(**{name: value}), caller))

    assert error["errorMessage"] == "Invalid parameters"
    assert error["details"].startswith(f"{name}: ")


@pytest.mark.parametrize("name", ["studyId", "limit", "offset", "mode", "rptId", "reportName"])
def test_a_repeated_parameter_is_invalid(listing, caller, name):
    repeated = "&".join(f"{key}={value}" for key, value in query().items())
    repeated += f"&{name}={query(mode='test', rptId=REPORT, reportName='x')[name]}" * 2

    error = error_of(listing(repeated, caller))

    assert error["errorMessage"] == "Invalid parameters"
    assert f"{name}: must be given at most once" in error["details"]


@pytest.mark.parametrize(("value", "number"), [("1000", 1000), ("007", 7), ("2147483647", None)])
def test_limit_and_offset_take_plain_decimal_digits_up_to_their_bounds(
    listing, caller, value, number
):
    values = query(offset=value) if number is None else query(limit=value)

    result = listing(values, caller).get_json()["result"]

    assert (result["limit"], result["offset"]) == (
        (number, 0) if number is not None else (10, 2**31 - 1)
    )


def test_each_listing_leaves_one_list_record_with_the_query_scope(
    listing, publish, caller, audit_records
):
    publish()

    response = listing(query(mode="test"), caller)

    (record,) = audit_records()
    assert response.status_code == 200
    assert record["event"] == "list"
    assert (record["jobId"], record["studyId"], record["mode"]) == (None, STUDY, "test")
    assert (record["subject"], record["status"]) == ("alice", 200)
    assert record["requestId"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("values", "status"), [({"offset": "-1"}, 400), ({"studyId": OTHER_STUDY}, 403)]
)
def test_a_refused_listing_leaves_one_refused_record(
    listing, caller, audit_records, values, status
):
    response = listing({**query(), "id": "A" * 32, **values}, caller)

    (record,) = audit_records()
    assert response.status_code == status
    assert (record["event"], record["status"], record["jobId"]) == ("refused", status, None)


@pytest.mark.parametrize("overrides", [{"audit_file": "/dev/full"}], ids=["disk-full"])
def test_a_listing_whose_record_cannot_be_written_is_refused_with_503(
    make_settings, token, overrides
):
    response = list_with(create_app(make_settings(**overrides)), token(GRANT))

    assert response.status_code == 503
    assert error_of(response)["errorMessage"] == "Audit trail unavailable"


def test_an_unreachable_catalog_is_503_with_retry_after(make_settings, token, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    app = create_app(make_settings(catalog_url=f"sqlite:///{blocker}/c.sqlite3", upgraded=False))

    response = list_with(app, token(GRANT))

    assert response.status_code == 503
    assert error_of(response)["errorMessage"] == "Report catalog unavailable"
    assert response.headers["Retry-After"].isdigit()
    assert str(blocker) not in response.get_data(as_text=True)


def test_an_authoriser_without_permissions_decides_each_run(make_settings, tmp_path, token):
    app = create_app(make_settings(authoriser="tests.hooks_example:make_authoriser"))
    services = app.extensions["reporting_svc"]
    source = tmp_path / "r.csv"
    source.write_bytes(b"a\n")
    test_job = publish_report(
        services.store, source, report_name="X", mode="test", study_id=STUDY,
        required_permission=UNBLINDED, catalog=services.catalog,
    )  # fmt: skip
    publish_report(
        services.store, source, report_name="X", mode="active", study_id=STUDY,
        catalog=services.catalog,
    )  # fmt: skip

    response = list_with(app, token(f"{STUDY}:test,active:REPORTING_VIEW"))

    assert listed_ids(response) == [test_job.id]
    assert response.get_json()["result"]["totalResults"] == 1


@pytest.fixture
def test_mode_hook(make_settings, tmp_path) -> tuple[Flask, JobRecord]:
    """An app whose authoriser hook opens, and lets anyone list, test-mode runs only; one
    run in test mode, one in active mode."""
    app = create_app(make_settings(authoriser="tests.hooks_example:OnlyTestModeAuthoriser"))
    services = app.extensions["reporting_svc"]
    source = tmp_path / "r.csv"
    source.write_bytes(b"a\n")
    test_job, _ = (
        publish_report(
            services.store,
            source,
            report_name="X",
            mode=mode,
            study_id=STUDY,
            catalog=services.catalog,
        )
        for mode in ("test", "active")
    )
    return app, test_job


def test_an_authoriser_hook_refuses_a_listing_the_grants_would_allow(test_mode_hook, token):
    app, _ = test_mode_hook
    headers = {"Authorization": f"Bearer {token(f'{STUDY}:test,active:REPORTING_VIEW')}"}

    response = app.test_client().get(
        DOWNLOAD_LIST, query_string=query(mode="active"), headers=headers
    )

    assert response.status_code == 403
    assert error_of(response)["errorMessage"] == "User not authorized to view download list."


def test_an_authoriser_hook_allows_a_listing_without_any_grant(test_mode_hook, token):
    app, test_job = test_mode_hook

    response = list_with(app, token())

    assert listed_ids(response) == [test_job.id]
    assert response.get_json()["result"]["totalResults"] == 1
