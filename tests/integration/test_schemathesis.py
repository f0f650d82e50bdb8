"""schemathesis against the live service under gunicorn: every answer is one the document allows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import DOWNLOAD, DOWNLOAD_LIST, STUDY
from tests.integration import processes as p

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Per operation and generation mode: 12 runs of 60 cases finish in about a minute.
EXAMPLES = 60

# Outside what these bounds generate: gunicorn itself answers a request line over 8190
# bytes with 414 and an oversized header with 431 (in the envelope, reporting_svc.worker),
# before the app sees the request. Documented values (reportName at most 255 characters)
# stay far below that.


@dataclass(frozen=True)
class Live:
    """A running service with one published report and a token that may download it."""

    url: str
    job_id: str
    token: str


def serve_one_report(processes: p.Processes, env: dict[str, str], folder: Path) -> Live:
    """Publish a CSV report and mint a token for it with the CLI, then start gunicorn."""
    report = folder / "visits.csv"
    report.write_bytes(b"subjectId,visit\n" + b"S-0001,Screening\n" * 200)
    record = p.publish_with_cli(env, report)
    token = p.token_with_cli(env, f"{record['studyId']}:test:REPORTING_VIEW")
    return Live(processes.serve(env), record["id"], token)


@pytest.fixture(scope="module")
def live(module_processes: p.Processes, tmp_path_factory: pytest.TempPathFactory) -> Live:
    """gunicorn serving a local store (stream mode); shared because no request writes a file."""
    folder = tmp_path_factory.mktemp("schemathesis")
    return serve_one_report(module_processes, p.service_env(folder), folder)


@pytest.fixture(scope="module")
def live_s3_redirect(
    module_processes: p.Processes, moto_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Live:
    """The same on moto's S3 server in redirect mode, the one mode that answers 302."""
    folder = tmp_path_factory.mktemp("schemathesis-s3")
    env = {**p.s3_env(p.service_env(folder), moto_server), "REPORTING_SVC_S3_DELIVERY": "redirect"}
    return serve_one_report(module_processes, env, folder)


def run_schemathesis(
    live: Live, method: str, mode: GenerationMode, path: str = DOWNLOAD, **fixed: Any
) -> set[int]:
    """Fuzz one operation for a bounded, repeatable number of cases; any failed check fails.

    Returns the statuses seen, so a test can show the cases reached the code it is about.
    Negative cases break the documented rules (including the bearer scheme: schemathesis
    then sends its own broken Authorization, hence 401s); the checks still apply to them.
    """
    schema = schemathesis.openapi.from_url(f"{live.url}/ec-reporting-svc/openapi.json")
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {live.token}"}
    seen: set[int] = set()

    # Health checks judge generation speed and filtering, which a live server's latency
    # and the fixed id distort; they say nothing about the service's answers.
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def fuzz(case: schemathesis.Case) -> None:
        # A 302 is checked as the service's answer; following it would check S3's instead.
        response = case.call_and_validate(
            base_url=live.url, headers=headers, checks=CHECKS, timeout=10, allow_redirects=False
        )
        seen.add(response.status_code)

    fuzz()
    return seen


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_any_query_is_answered_as_documented(live: Live, method: str, mode: GenerationMode) -> None:
    seen = run_schemathesis(live, method, mode)

    assert {400, 404} <= seen, "cases should pass authentication and reach validation and lookup"


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("service", "success"), [("live", 200), ("live_s3_redirect", 302)], ids=["local", "s3-redirect"]
)
def test_filters_and_http_headers_on_a_real_job_are_answered_as_documented(
    request: pytest.FixtureRequest, service: str, success: int, method: str, mode: GenerationMode
) -> None:
    live: Live = request.getfixturevalue(service)

    seen = run_schemathesis(live, method, mode, query={"id": live.job_id})

    assert seen & {200, 206, 302}, "cases should reach the delivery of the real job"
    if mode is GenerationMode.POSITIVE:
        assert success in seen, "plain valid requests should get the store's usual answer"


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_any_listing_query_is_answered_as_documented(live: Live, mode: GenerationMode) -> None:
    seen = run_schemathesis(live, "GET", mode, path=DOWNLOAD_LIST)

    assert seen & {400, 403}, "cases should pass authentication and reach validation"


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_listings_of_a_study_with_a_run_are_answered_as_documented(
    live: Live, mode: GenerationMode
) -> None:
    seen = run_schemathesis(live, "GET", mode, path=DOWNLOAD_LIST, query={"studyId": STUDY})

    if mode is GenerationMode.POSITIVE:
        assert 200 in seen, "valid listings of the token's study should list its run"
