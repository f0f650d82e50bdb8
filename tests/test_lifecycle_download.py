"""Expired and withdrawn jobs (docs/api.md §6): 410 in every delivery mode, only after every
other check; the download list drops them. The app's clock is held by the test."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from reporting_svc.lifecycle import Operator, withdraw_job
from reporting_svc.storage.record import parse_instant
from tests.support import BUCKET, OTHER_STUDY, STUDY, error_of

CONTENT = b"subjectId,visit\n" + b"S-0001,Screening\n" * 100
EXPIRES = "2031-03-04T05:06:07.089Z"
REASON = "wrong unblinding in the cut-off"
S3 = {"store": "s3", "s3_bucket": BUCKET, "s3_region": "us-east-1"}
MODES = [
    pytest.param({}, id="stream"),
    pytest.param({"local_delivery": "x-accel"}, id="x-accel"),
    pytest.param({**S3, "s3_delivery": "proxy"}, id="s3-proxy"),
    pytest.param({**S3, "s3_delivery": "redirect"}, id="s3-redirect"),
    pytest.param({**S3, "s3_delivery": "x-accel"}, id="s3-x-accel"),
]
KINDS = ["GET", "HEAD", "Range", "If-None-Match"]
# What a job still served answers each kind of request, by delivery: the service sends the
# bytes (206 for the range), hands the file to nginx (200 with X-Accel-Redirect; nginx
# applies the range; a HEAD the service answers itself) or sends the client to S3 (302;
# S3 applies the range). A matching ETag is a 304 from the service in every mode.
SERVED = {
    "stream": {"GET": 200, "HEAD": 200, "Range": 206, "If-None-Match": 304},
    "proxy": {"GET": 200, "HEAD": 200, "Range": 206, "If-None-Match": 304},
    "x-accel": {"GET": 200, "HEAD": 200, "Range": 200, "If-None-Match": 304},
    "redirect": {"GET": 302, "HEAD": 302, "Range": 302, "If-None-Match": 304},
}
# The order of checks does not depend on the delivery: one mode answers for all.
ONE_MODE = pytest.mark.parametrize("overrides", [{}], ids=["stream"])
TIMES = {
    "before": timedelta(milliseconds=-1),
    "at": timedelta(0),
    "after": timedelta(days=400),
}


@pytest.fixture(params=MODES)
def overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(request.param)


@pytest.fixture
def settings(make_settings: Any, overrides: dict[str, Any], request: Any) -> Any:
    """The app's settings; an S3 store is created inside moto's in-process mock."""
    if overrides.get("store") == "s3":
        request.getfixturevalue("s3_bucket")
    return make_settings(**overrides)


@pytest.fixture
def job(publish: Any) -> Any:
    return publish(CONTENT, "visits.csv", expires_at=EXPIRES)


@pytest.fixture
def ask(download: Any, bearer: str, job: Any) -> Any:
    """``ask(kind, **query)``: one kind of download request for the job."""

    def call(kind: str, token: str | None = bearer, **query: str) -> Any:
        headers = {
            "Range": {"Range": "bytes=0-9"},
            "If-None-Match": {"If-None-Match": f'"{job.sha256}"'},
        }.get(kind, {})
        method = "HEAD" if kind == "HEAD" else "GET"
        return download({"id": job.id, **query}, token, method=method, headers=headers)

    return call


@pytest.fixture
def withdraw(app: Any, job: Any) -> Any:
    """``withdraw()``: withdraw the job as the command does, with the app's services."""

    def call() -> Any:
        services = app.extensions["reporting_svc"]
        return withdraw_job(
            services.store,
            services.catalog,
            services.audit,
            job.id,
            reason=REASON,
            operator=Operator("ops-anna", "test"),
            now=services.clock(),
        )

    return call


def assert_gone(response: Any, details: str) -> None:
    """A 410 in the envelope that hands out neither bytes, a URL nor a file to nginx."""
    assert response.status_code == 410
    assert "Location" not in response.headers
    assert "X-Accel-Redirect" not in response.headers
    assert "ETag" not in response.headers
    if response.request.method == "HEAD":
        assert response.data == b""
        return
    data = error_of(response)
    assert data["errorMessage"] == "Report no longer available"
    assert data["details"] == details


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("moment", TIMES)
def test_a_job_is_served_until_its_expiry_and_gone_from_then_on(
    ask: Any, clock: Any, overrides: dict[str, Any], kind: str, moment: str
) -> None:
    clock.at = parse_instant(EXPIRES) + TIMES[moment]
    delivery = overrides.get("s3_delivery") or overrides.get("local_delivery") or "stream"

    response = ask(kind)

    if moment == "before":
        assert response.status_code == SERVED[delivery][kind]
    else:
        assert_gone(response, f"expired at {EXPIRES}")


@pytest.mark.parametrize("moment", TIMES)
def test_the_download_list_shows_a_job_until_its_expiry(
    listing: Any, bearer: str, job: Any, clock: Any, moment: str
) -> None:
    clock.at = parse_instant(EXPIRES) + TIMES[moment]

    result = listing({"studyId": STUDY, "limit": "10", "offset": "0"}, bearer).get_json()["result"]

    shown = [run["downloadId"] for run in result["reportRunStatus"]]
    assert (shown, result["totalResults"]) == (([job.id], 1) if moment == "before" else ([], 0))
    if shown:
        assert result["reportRunStatus"][0]["expiresAt"] == EXPIRES


@pytest.mark.parametrize("kind", KINDS)
def test_a_withdrawn_job_is_gone_with_its_reason_for_every_kind_of_request(
    ask: Any, clock: Any, withdraw: Any, kind: str
) -> None:
    withdraw()

    assert_gone(ask(kind), f"withdrawn: {REASON}")


@ONE_MODE
def test_a_withdrawal_drops_the_job_from_the_list_and_its_count_at_once(
    listing: Any, bearer: str, publish: Any, job: Any, clock: Any, withdraw: Any
) -> None:
    kept = publish()
    query = {"studyId": STUDY, "limit": "10", "offset": "0"}
    assert listing(query, bearer).get_json()["result"]["totalResults"] == 2

    withdraw()

    result = listing(query, bearer).get_json()["result"]
    assert result["totalResults"] == 1
    assert [run["downloadId"] for run in result["reportRunStatus"]] == [kept.id]


@ONE_MODE
def test_a_refused_gone_download_is_on_record_as_refused_410(
    ask: Any, clock: Any, withdraw: Any, audit_records: Any, settings: Any, job: Any
) -> None:
    withdraw()

    response = ask("GET")

    last = audit_records(settings.audit_path)[-1]
    assert (last["event"], last["status"], last["jobId"]) == ("refused", 410, job.id)
    assert last["requestId"] == response.headers["X-Request-ID"]


# What a caller who may not see the job, or names it wrongly, gets: as for a live job.
EARLIER_ANSWERS = {
    "no token": ({}, None, 401),
    "another study's grant": ({}, f"{OTHER_STUDY}:test:REPORTING_VIEW", 401),
    "another mode's grant": ({}, f"{STUDY}:active:REPORTING_VIEW", 401),
    "another permission": ({}, f"{STUDY}:test:UNBLINDED_VIEW", 401),
    "bad parameter": ({"mode": "nonsense"}, f"{STUDY}:test:REPORTING_VIEW", 400),
    "other study filter": ({"studyId": OTHER_STUDY}, f"{STUDY}:test:REPORTING_VIEW", 404),
    "other mode filter": ({"mode": "active"}, f"{STUDY}:test:REPORTING_VIEW", 404),
    "tenant filter": ({"studyId": "null"}, f"{STUDY}:test:REPORTING_VIEW", 404),
}


@ONE_MODE
@pytest.mark.parametrize("state", ["expired", "withdrawn"])
@pytest.mark.parametrize("case", EARLIER_ANSWERS)
def test_a_caller_stopped_by_an_earlier_check_gets_the_same_answer_as_for_a_live_job(
    ask: Any, token: Any, clock: Any, withdraw: Any, state: str, case: str
) -> None:
    query, grant, status = EARLIER_ANSWERS[case]
    caller = token(grant) if grant else None
    live = ask("GET", caller, **query)

    if state == "expired":
        clock.at = parse_instant(EXPIRES)
    else:
        withdraw()
    gone = ask("GET", caller, **query)

    assert live.status_code == gone.status_code == status
    assert error_of(gone) == error_of(live)
    assert gone.headers.get("WWW-Authenticate") == live.headers.get("WWW-Authenticate")


@ONE_MODE
def test_an_unknown_id_is_404_whatever_else_is_withdrawn(
    download: Any, bearer: str, clock: Any, withdraw: Any
) -> None:
    withdraw()

    assert download({"id": "0" * 32}, bearer).status_code == 404
