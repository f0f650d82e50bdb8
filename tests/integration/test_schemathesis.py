"""schemathesis, run as a user runs it (``schemathesis run --checks all``), against the
live service under gunicorn holding the sample report and a token that may download it.

Every check schemathesis has is on, in every phase (the document's examples, coverage,
fuzzing, and the stateful runs that follow ``downloadList``'s ids into downloads): no
5xx, no undocumented status, header or content type, no body off its schema, a
schema-valid request accepted, an invalid one refused, every other method a 405 with
``Allow``. The document's examples are the sample's own values, so the run reaches
real downloads (200), which the HAR report shows.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from reporting_svc.lifecycle.sample import (
    SAMPLE_JOB_ID,
    SAMPLE_KICKOFF,
    SAMPLE_REPORT_ID,
    SAMPLE_REPORT_NAME,
    SAMPLE_STUDY_ID,
)
from tests.integration import processes as p

pytestmark = pytest.mark.integration

DOWNLOAD = "reports/download"
DOWNLOAD_LIST = "reportmetadata/downloadList"
# A 412 (If-Match or If-Unmodified-Since naming another version) and a 416 (a range past
# the end) answer well-formed requests whose condition the file does not meet, as RFC
# 9110 says; schemathesis counts only 2xx, 3xx, 401, 403, 404, 409, 429 and 5xx as
# "accepted" by default, so they are added to what a valid request may get.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "416", "429", "5xx"]

[phases.stateful]
max-steps = 3

[phases.stateful.generation]
max-examples = 5
"""
# The run is bounded by its cases per operation and phase (each test's own), and the
# command by a deadline. Not by ``--max-time``: fuzzing and stateful runs repeat until
# that time is spent.
DEADLINE = 240


@dataclass(frozen=True)
class Live:
    """A running service holding the sample report, and a token that may download it."""

    url: str
    token: str
    folder: Path


def serve_the_sample(processes: p.Processes, env: dict[str, str], folder: Path) -> Live:
    """Publish the sample report (its real ids, name and kickoff, so the document's
    examples name it) with the CLI, mint a token for its study, then start gunicorn.

    The file is larger than the sample's few rows, so that fuzzed ranges land inside it.
    """
    report = folder / "subject-data-extract.csv"
    report.write_bytes(b"subjectId,visit\n" + b"S-0001,Screening\n" * 4000)
    p.run_cli(
        "publish",
        str(report),
        "--report-name",
        SAMPLE_REPORT_NAME,
        "--mode",
        "test",
        "--study-id",
        SAMPLE_STUDY_ID,
        "--job-id",
        SAMPLE_JOB_ID,
        "--kickoff",
        SAMPLE_KICKOFF,
        "--report-id",
        SAMPLE_REPORT_ID,
        env=env,
    )
    token = p.token_with_cli(env, f"{SAMPLE_STUDY_ID}:test:REPORTING_VIEW")
    return Live(processes.serve(env), token, folder)


@pytest.fixture(scope="module")
def live(module_processes: p.Processes, tmp_path_factory: pytest.TempPathFactory) -> Live:
    """gunicorn serving a local store (stream mode)."""
    folder = tmp_path_factory.mktemp("schemathesis")
    return serve_the_sample(module_processes, p.service_env(folder), folder)


@pytest.fixture(scope="module")
def live_s3_redirect(
    module_processes: p.Processes, moto_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Live:
    """The same on moto's S3 server in redirect mode, the one mode that answers 302."""
    folder = tmp_path_factory.mktemp("schemathesis-s3")
    env = {**p.s3_env(p.service_env(folder), moto_server), "REPORTING_SVC_S3_DELIVERY": "redirect"}
    return serve_the_sample(module_processes, env, folder)


def run_schemathesis(
    live: Live, *options: str, max_examples: int
) -> dict[tuple[str, str], set[int]]:
    """``schemathesis run --checks all`` on the served document; any failure fails the
    test with schemathesis's own report. Returns the statuses seen per method and path."""
    config = live.folder / "schemathesis.toml"
    config.write_text(CONFIG)
    har = live.folder / "schemathesis.har"
    result = subprocess.run(
        [
            str(p.BIN / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{live.url}/ec-reporting-svc/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {live.token}",
            "--max-examples",
            str(max_examples),
            "--seed",
            "21",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--no-color",
            "--report",
            "har",
            "--report-har-path",
            str(har),
            *options,
        ],
        cwd=live.folder,  # schemathesis keeps its cache of failures in .schemathesis here
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    for entry in json.loads(har.read_text())["log"]["entries"]:
        path = entry["request"]["url"].split("?")[0]
        for name in (DOWNLOAD, DOWNLOAD_LIST):
            if path.endswith(name):
                seen[entry["request"]["method"], name].add(entry["response"]["status"])
    return seen


def test_every_check_passes_and_the_examples_reach_real_downloads(live: Live) -> None:
    seen = run_schemathesis(live, max_examples=10)

    assert {200, 400, 401, 404} <= seen["GET", DOWNLOAD], "cases reach every step of the checks"
    assert {200, 404} <= seen["HEAD", DOWNLOAD]
    assert {200, 400, 403} <= seen["GET", DOWNLOAD_LIST]
    assert seen["GET", DOWNLOAD] & {206, 304, 412, 416}, "header cases reach the conditions"


def test_every_check_passes_in_redirect_mode(live_s3_redirect: Live) -> None:
    seen = run_schemathesis(
        live_s3_redirect,
        "--phases",
        "examples,fuzzing",
        "--include-path-regex",
        DOWNLOAD,
        max_examples=5,
    )

    assert 302 in seen["GET", DOWNLOAD] and 302 in seen["HEAD", DOWNLOAD]
