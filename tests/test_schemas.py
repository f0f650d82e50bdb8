"""The download endpoint's query parameters: each bad input is a 400 naming it, good ones load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reporting_svc.lifecycle.publish import PublishError
from reporting_svc.storage import JobRecord
from tests.support import STUDY, error_of

JOB_ID = "6A7C29DD011241DFBE1B64399283C860"
DASHED_JOB_ID = "6A7C29DD-0112-41DF-BE1B-64399283C860"
KICKOFF = "2025-06-04T11:27:52.014Z"
CONTENT = b"subjectId,visit\nS-0001,Screening\n"
KIB_64 = 64 * 1024


@pytest.fixture
def job(publish: Callable[..., JobRecord]) -> JobRecord:
    """A study job that the ``bearer`` token may download, so only the query can fail."""
    return publish(CONTENT, job_id=JOB_ID, kickoff=KICKOFF)


@pytest.fixture
def tenant_job(publish: Callable[..., JobRecord]) -> JobRecord:
    return publish(CONTENT, "hsl.csv", study_id=None, report_name="HSL Report")


@pytest.mark.parametrize(
    "query",
    [{}, {"id": ""}, {"studyId": STUDY, "mode": "test"}],
    ids=["no-parameters", "empty-id", "other-parameters-only"],
)
def test_missing_or_empty_id_is_insufficient(
    job: JobRecord, bearer: str, download: Callable[..., Any], query: dict[str, str]
) -> None:
    response = download(query, bearer)

    assert response.status_code == 400
    error = error_of(response)
    assert error["errorMessage"] == "Insufficient parameters"
    assert error["details"].startswith("id: ")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        pytest.param({"id": JOB_ID[:-1]}, "id", id="id-31-digits"),
        pytest.param({"id": JOB_ID + "0"}, "id", id="id-33-digits"),
        pytest.param({"id": "G" + JOB_ID[1:]}, "id", id="id-non-hex"),
        pytest.param({"id": JOB_ID[:16] + "/" + JOB_ID[17:]}, "id", id="id-with-slash"),
        pytest.param({"id": "../" + JOB_ID}, "id", id="id-with-dot-dot-slash"),
        pytest.param({"id": JOB_ID[:15] + ".." + JOB_ID[17:]}, "id", id="id-with-dot-dot"),
        pytest.param({"id": JOB_ID[:16] + "%2F" + JOB_ID[16:]}, "id", id="id-literal-%2F"),
        pytest.param(f"id={JOB_ID[:16]}%2F{JOB_ID[16:]}", "id", id="id-encoded-slash"),
        pytest.param(f"id={JOB_ID}%00", "id", id="id-with-nul"),
        pytest.param(f"id={JOB_ID}%0A", "id", id="id-with-newline"),
        pytest.param({"id": f" {JOB_ID}"}, "id", id="id-with-space"),
        pytest.param({"id": "6A7C29DD0-112-41DF-BE1B-64399283C860"}, "id", id="id-misplaced-dash"),
        pytest.param({"id": JOB_ID, "studyId": STUDY[:-1]}, "studyId", id="studyId-short"),
        pytest.param({"id": JOB_ID, "studyId": "undefined"}, "studyId", id="studyId-word"),
        pytest.param({"id": JOB_ID, "studyId": " "}, "studyId", id="studyId-blank"),
        pytest.param({"id": JOB_ID, "studyId": "../" + STUDY}, "studyId", id="studyId-path"),
        pytest.param({"id": JOB_ID, "mode": "production"}, "mode", id="mode-unknown"),
        pytest.param({"id": JOB_ID, "mode": " test"}, "mode", id="mode-padded"),
        pytest.param({"id": JOB_ID, "reportName": "x" * 256}, "reportName", id="name-256-chars"),
        pytest.param({"id": JOB_ID, "reportName": "Subject\nData"}, "reportName", id="name-lf"),
        pytest.param({"id": JOB_ID, "reportName": "Subject\x00"}, "reportName", id="name-nul"),
        pytest.param({"id": JOB_ID, "reportName": "a\x7fb"}, "reportName", id="name-del"),
        pytest.param({"id": JOB_ID, "rptKickoffDatetime": "yesterday"}, "rptKickoffDatetime"),
        pytest.param(
            {"id": JOB_ID, "rptKickoffDatetime": "2025-06-04T25:00:00Z"},
            "rptKickoffDatetime",
            id="kickoff-hour-25",
        ),
        pytest.param(
            {"id": JOB_ID, "rptKickoffDatetime": "1749036472014"},
            "rptKickoffDatetime",
            id="kickoff-epoch-millis",
        ),
        pytest.param(
            {"id": JOB_ID, "rptKickoffDatetime": "2025-06-04"},
            "rptKickoffDatetime",
            id="kickoff-date-only",
        ),
        pytest.param(
            {"id": JOB_ID, "rptKickoffDatetime": "2025-06-04T11:27:52.014"},
            "rptKickoffDatetime",
            id="kickoff-without-zone",
        ),
    ],
)
def test_malformed_parameter_is_invalid_and_named(
    job: JobRecord,
    bearer: str,
    download: Callable[..., Any],
    query: dict[str, str] | str,
    parameter: str,
) -> None:
    response = download(query, bearer)

    assert response.status_code == 400
    error = error_of(response)
    assert error["errorMessage"] == "Invalid parameters"
    assert error["details"].startswith(f"{parameter}: ")


def test_malformed_id_details_state_the_rule(
    job: JobRecord, bearer: str, download: Callable[..., Any]
) -> None:
    response = download({"id": "nope"}, bearer)

    assert error_of(response)["details"] == "id: must be a GUID of 32 hexadecimal digits"


@pytest.mark.parametrize(
    ("kickoff", "details"),
    [
        ("2025-06-04T11:27:52.014", "has no zone: end it in Z (UTC) or an offset such as +02:00"),
        (
            "2025-06-04",
            "must be an ISO-8601 date-time with its zone, e.g. 2025-06-04T11:27:52.014Z",
        ),
    ],
)
def test_a_kickoff_that_names_no_instant_is_refused_with_the_rule_publish_applies(
    job: JobRecord,
    bearer: str,
    download: Callable[..., Any],
    publish: Callable[..., JobRecord],
    kickoff: str,
    details: str,
) -> None:
    """Not guessed to be UTC: the same wall-clock time is a different instant elsewhere."""
    response = download({"id": JOB_ID, "rptKickoffDatetime": kickoff}, bearer)
    with pytest.raises(PublishError) as refused:
        publish(CONTENT, kickoff=kickoff)

    assert response.status_code == 400
    assert error_of(response)["details"] == f"rptKickoffDatetime: {details}"
    assert str(refused.value) == f"kickoff {kickoff!r} {details}"


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("id", JOB_ID),
        ("studyId", STUDY),
        ("mode", "test"),
        ("reportName", "Subject Data Extract"),
        ("rptKickoffDatetime", KICKOFF),
    ],
)
def test_parameter_given_twice_is_invalid_even_with_equal_values(
    job: JobRecord, bearer: str, download: Callable[..., Any], parameter: str, value: str
) -> None:
    query = [("id", JOB_ID)] if parameter != "id" else []
    query += [(parameter, value), (parameter, value)]

    response = download("&".join(f"{name}={val}" for name, val in query), bearer)

    assert response.status_code == 400
    error = error_of(response)
    assert error["errorMessage"] == "Invalid parameters"
    assert error["details"] == f"{parameter}: must be given at most once"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(f"id={'A' * KIB_64}", id="huge-id"),
        pytest.param(f"id={JOB_ID}&reportName={'n' * KIB_64}", id="huge-report-name"),
        pytest.param(f"id={JOB_ID}" + "&mode=test" * (KIB_64 // 10), id="many-repeats"),
        pytest.param(f"id={'A' * 40}&" + "x=1&" * (KIB_64 // 4), id="many-unknown"),
    ],
)
def test_query_string_of_64_kib_is_a_400_envelope(
    job: JobRecord, bearer: str, download: Callable[..., Any], query: str
) -> None:
    assert len(query) >= KIB_64

    response = download(query, bearer)

    assert response.status_code == 400
    assert error_of(response)["errorMessage"] == "Invalid parameters"


@pytest.mark.parametrize(
    ("parameter", "option", "value"),
    [
        pytest.param("reportName", "report_name", "x" * 256, id="name-256-chars"),
        pytest.param("reportName", "report_name", "Subject\nData", id="name-lf"),
        pytest.param("reportName", "report_name", "Subject\u2028Data", id="name-line-separator"),
        pytest.param("mode", "mode", "production", id="mode-unknown"),
        pytest.param("mode", "mode", " test", id="mode-padded"),
    ],
)
def test_query_and_publish_refuse_a_value_by_the_same_rule(
    job: JobRecord,
    bearer: str,
    download: Callable[..., Any],
    publish: Callable[..., JobRecord],
    parameter: str,
    option: str,
    value: str,
) -> None:
    response = download({"id": JOB_ID, parameter: value}, bearer)
    with pytest.raises(PublishError) as refused:
        publish(CONTENT, **{option: value})

    assert response.status_code == 400
    rule = error_of(response)["details"].removeprefix(f"{parameter}: ")
    assert rule.startswith("must be ")
    assert str(refused.value).endswith(f": {rule}")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"id": JOB_ID.lower()}, id="lower-case-id"),
        pytest.param({"id": DASHED_JOB_ID}, id="dashed-id"),
        pytest.param({"id": DASHED_JOB_ID.lower()}, id="dashed-lower-case-id"),
        pytest.param({"id": JOB_ID, "studyId": STUDY.lower()}, id="lower-case-study"),
        pytest.param({"id": JOB_ID, "mode": "TEST"}, id="upper-case-mode"),
        pytest.param({"id": JOB_ID, "mode": "Test"}, id="mixed-case-mode"),
        pytest.param({"id": JOB_ID, "mode": ""}, id="empty-mode"),
        pytest.param({"id": JOB_ID, "reportName": ""}, id="empty-report-name"),
        pytest.param({"id": JOB_ID, "rptKickoffDatetime": ""}, id="empty-kickoff"),
        pytest.param({"id": JOB_ID, "foo": "bar", "ID": "nonsense"}, id="unknown-parameters"),
        pytest.param(f"id={JOB_ID}&foo=1&foo=2", id="unknown-parameter-repeated"),
    ],
)
def test_accepted_forms_reach_the_job(
    job: JobRecord, bearer: str, download: Callable[..., Any], query: dict[str, str] | str
) -> None:
    response = download(query, bearer)

    assert response.status_code == 200
    assert response.data == CONTENT


def test_report_name_of_255_printable_characters_is_accepted(
    publish: Callable[..., JobRecord], bearer: str, download: Callable[..., Any]
) -> None:
    name = "Données " + "x" * 247
    record = publish(CONTENT, report_name=name)

    response = download({"id": record.id, "reportName": name}, bearer)

    assert response.status_code == 200


@pytest.mark.parametrize("study_id", ["", "null", "NULL", "Null"])
def test_empty_or_null_study_id_selects_a_tenant_report(
    tenant_job: JobRecord, token: Callable[..., str], download: Callable[..., Any], study_id: str
) -> None:
    response = download(
        {"id": tenant_job.id, "studyId": study_id}, token("tenant:test:REPORTING_VIEW")
    )

    assert response.status_code == 200
    assert response.data == CONTENT
