"""The benchmark's reports: files of each size, published through the real publish path.

Publishing with ``publish_report`` (what ``reporting-svc publish`` calls) means records,
keys, hashes and S3 multipart uploads are exactly those a deployment would serve.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings
from reporting_svc.storage import make_store

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
STUDY = "CFD8129A430A473C8A02F4BA5DAAD865"
SECRET = "bench-" + "0123456789abcdef" * 4
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
REGION = "us-east-1"


@dataclass(frozen=True)
class Report:
    """One published file: its size label, size in bytes and job id (same in both stores)."""

    label: str
    size: int
    job_id: str


def size_label(size: int) -> str:
    """1 KiB, 1 MiB, 256 MiB, 1 GiB: the names the table uses."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit:
            return f"{size // unit} {name}"
    return f"{size} B"


def write_file(path: Path, size: int) -> None:
    """Random bytes (incompressible, nothing can shortcut them), written 1 MiB at a time."""
    with path.open("wb") as handle:
        left = size
        while left:
            chunk = min(left, MIB)
            handle.write(os.urandom(chunk))
            left -= chunk


def write_sparse(path: Path, size: int) -> None:
    """Zeros as a sparse file: a report of any size at no cost, where its bytes do not
    matter (the concurrency scenario reads a few KiB of each)."""
    with path.open("wb") as handle:
        handle.truncate(size)


def local_env(base: dict[str, str], folder: Path) -> dict[str, str]:
    """The service's environment for a local store under ``folder``; default audit settings."""
    env = {key: value for key, value in base.items() if not key.startswith("REPORTING_SVC_")}
    env.update(
        REPORTING_SVC_STORE="local",
        REPORTING_SVC_LOCAL_ROOT=str(folder / "reports"),
        REPORTING_SVC_VAR_DIR=str(folder / "var"),
        REPORTING_SVC_JWT_SECRET=SECRET,
    )
    # The benchmark's one token stands for many callers: give it the host's whole share, so
    # the figures measure what a download costs, not one caller's bound (docs/deploying.md).
    env["REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT"] = str(load_settings(env).host_download_limit)
    return env


def s3_env(base: dict[str, str], endpoint: str) -> dict[str, str]:
    """``base`` switched to an S3 store in a fresh bucket on the S3 server at ``endpoint``."""
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return {
        **base,
        **S3_CREDENTIALS,
        "REPORTING_SVC_STORE": "s3",
        "REPORTING_SVC_S3_BUCKET": bucket,
        "REPORTING_SVC_S3_PREFIX": "clinical/",
        "REPORTING_SVC_S3_REGION": REGION,
        "REPORTING_SVC_S3_ENDPOINT_URL": endpoint,
    }


def s3_client(endpoint: str) -> Any:
    """A boto3 client for the benchmark's S3 server (moto ignores the credentials' values)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def publish_all(
    sizes: list[int],
    files: Path,
    envs: list[dict[str, str]],
    *,
    log: Callable[[str], None] = print,
    write: Callable[[Path, int], None] = write_file,
) -> list[Report]:
    """Write one file per size and publish it, under the same job id, into every store."""
    files.mkdir(parents=True, exist_ok=True)
    # boto3 takes credentials from this process's environment, as the CLI would from its own.
    os.environ.update(S3_CREDENTIALS)
    stores = [make_store(load_settings(env)) for env in envs]
    reports = []
    for size in sizes:
        label = size_label(size)
        path = files / f"report-{size}.bin"
        write(path, size)
        job_id = uuid.uuid4().hex
        for store in stores:
            job_id = publish_report(
                store,
                path,
                report_name=f"Benchmark {label}",
                mode="test",
                study_id=STUDY,
                job_id=job_id,
            ).id
        log(f"published {label} as job {job_id} into {len(stores)} stores")
        path.unlink()
        reports.append(Report(label, size, job_id))
    return reports


def bench_token(env: dict[str, str], ttl: int = 24 * 3600) -> str:
    """A token for every benchmark report, valid for the whole run (minted, not requested)."""
    settings = load_settings(env)
    return mint_token(settings, "bench", [parse_grant(f"{STUDY}:test:REPORTING_VIEW")], ttl=ttl)
