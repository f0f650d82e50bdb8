"""``reporting-svc fetch --study``: downloadList paged, a whole study pulled, reruns incremental.

A study of 30 runs in two modes (one of 64 MiB) behind the project's nginx, plus runs the
caller may not download; and a small study on S3 whose downloads redirect to presigned
URLs, which the client follows without the token.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from reporting_svc.storage.layout import content_key
from tests.integration.fetching import Service, deploy, fetch, fetch_measured, sha256sum_check
from tests.integration.processes import Processes, s3_client, s3_env, service_env
from tests.support import STUDY

pytestmark = pytest.mark.integration

RUNS = 30
LARGE = 64 * 1024 * 1024


def publish_study(service: Service) -> dict[str, dict[str, Any]]:
    """30 runs, alternately test and active, names repeating as real extracts do; published
    in this process (the runs after them go through the command)."""
    pick = random.Random(14)
    records = {}
    for number in range(RUNS):
        size = LARGE if number == 0 else pick.randrange(1, 200 * 1024)
        mode = ("test", "active")[number % 2]
        record = service.publish_here(
            os.urandom(size), f"extract-{mode}-{number % 4}.csv", mode=mode
        )
        records[record["id"]] = record
    return records


def events_of(kind: str, events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["downloadId"] for e in events if e["event"] == kind)


def started_jobs(service: Service) -> list[str]:
    return sorted(r["jobId"] for r in service.audit_records() if r["event"] == "start")


def test_a_study_is_pulled_whole_then_nothing_then_only_its_new_run(
    processes: Processes, tmp_path: Path, record_property: Any
) -> None:
    service = deploy(processes)
    records = publish_study(service)
    unblinded = service.publish(b"arm,subject\n", "unblinded.csv", "--study-id", STUDY,
                                "--required-permission", "UNBLINDED_VIEW")  # fmt: skip
    training = service.publish(b"x\n", "training.csv", mode="training")
    token = service.token()
    dest = tmp_path / "study"
    study = ("--study", STUDY, "--parallel", "2")

    first, peak_kib, seconds = fetch_measured(service.url, dest, *study, token=token)
    checked = sha256sum_check(dest)
    after_first = started_jobs(service)
    second = fetch(service.url, dest, *study, token=token)
    after_second = started_jobs(service)
    new = service.publish(os.urandom(5000), "extract-test-0.csv")
    third = fetch(service.url, dest, *study, token=token)

    record_property("study_fetch_peak_rss_kib", peak_kib)
    record_property("study_fetch_seconds", round(seconds, 2))
    assert first.returncode == 0, first.stderr
    assert events_of("listed", first.events) == sorted(records)
    assert events_of("verified", first.events) == sorted(records)
    assert checked.returncode == 0 and checked.stdout.count(": OK\n") == RUNS
    assert second.returncode == 0
    assert events_of("skipped", second.events) == sorted(records)
    assert {e["event"] for e in second.events} == {"listed", "skipped"}
    assert after_second == after_first == sorted(records)
    assert third.returncode == 0
    assert events_of("verified", third.events) == [new["id"]]
    assert started_jobs(service) == sorted([*records, new["id"]])
    assert sha256sum_check(dest).returncode == 0
    for hidden in (unblinded["id"], training["id"]):
        assert all(hidden not in line for line in first.stdout.splitlines())
        assert all(r["jobId"] != hidden for r in service.audit_records())
    manifest = json.loads((dest / ".reporting-svc" / "manifest.json").read_text())
    assert {key: entry["sha256"] for key, entry in manifest["downloads"].items()} == {
        **{key: record["sha256"] for key, record in records.items()},
        new["id"]: new["sha256"],
    }


@pytest.fixture
def redirecting(processes: Processes, moto_server: str, tmp_path: Path) -> Service:
    """The service on moto's S3 server in ``redirect`` mode: S3 sends the bytes."""
    env = {**s3_env(service_env(tmp_path), moto_server), "REPORTING_SVC_S3_DELIVERY": "redirect"}
    return Service(processes.serve(env), env, tmp_path)


def test_presigned_s3_redirects_are_followed_without_the_token(
    redirecting: Service, tmp_path: Path
) -> None:
    service = redirecting
    records = [service.publish(os.urandom(100_000 + n), f"r{n}.bin") for n in range(3)]

    fetched = fetch(service.url, tmp_path / "pulled", "--study", STUDY, token=service.token())

    assert fetched.returncode == 0, fetched.stderr
    assert events_of("verified", fetched.events) == sorted(r["id"] for r in records)
    redirects = [r["jobId"] for r in service.audit_records() if r["event"] == "redirect"]
    assert sorted(redirects) == sorted(r["id"] for r in records)


def test_one_job_through_an_s3_redirect_is_verified_by_the_services_etag_then_skipped(
    redirecting: Service, tmp_path: Path
) -> None:
    record = redirecting.publish(os.urandom(300_000), "r.bin")
    token = redirecting.token()

    first = fetch(redirecting.url, tmp_path / "one", "--id", record["id"], token=token)
    second = fetch(redirecting.url, tmp_path / "one", "--id", record["id"], token=token)

    assert first.returncode == 0, first.stderr
    assert [e["event"] for e in first.events] == ["started", "verified"]
    assert first.of("verified")[0]["sha256"] == record["sha256"]
    assert [e["event"] for e in second.events] == ["skipped"]
    assert [r["event"] for r in redirecting.audit_records() if r["jobId"] == record["id"]] == [
        "redirect",
        "not-modified",
        "not-modified",
    ]


def test_one_job_whose_s3_object_was_swapped_fails_and_is_not_saved(
    redirecting: Service, tmp_path: Path
) -> None:
    record = redirecting.publish(os.urandom(300_000), "r.bin")
    s3_client(redirecting.env["REPORTING_SVC_S3_ENDPOINT_URL"]).put_object(
        Bucket=redirecting.env["REPORTING_SVC_S3_BUCKET"],
        Key=redirecting.env["REPORTING_SVC_S3_PREFIX"] + content_key(record["id"]),
        Body=os.urandom(300_000),
    )

    fetched = fetch(
        redirecting.url, tmp_path / "one", "--id", record["id"], token=redirecting.token()
    )

    assert fetched.returncode == 1
    assert f"does not match the service's ETag {record['sha256']}, twice" in fetched.stderr
    assert not (tmp_path / "one" / "r.bin").exists()
