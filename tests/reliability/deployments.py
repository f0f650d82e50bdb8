"""A running deployment for the reliability tests: its reports, workers and audit trail."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

from harness.processes import children
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings, load_settings
from reporting_svc.storage import Store, make_store
from reporting_svc.storage.s3 import S3Store
from tests.integration.processes import Processes, s3_env, service_env
from tests.support import DOWNLOAD, STUDY

GRANT = f"{STUDY}:test:REPORTING_VIEW"
# The modes on an S3 store: each mode's value of REPORTING_SVC_S3_DELIVERY.
S3_DELIVERY = {"proxy": "proxy", "s3 x-accel": "x-accel"}


@dataclass
class Deployment:
    """``reporting-svc serve`` (behind nginx for x-accel) with published reports and a token.

    ``url`` is where clients connect (nginx's address for x-accel, gunicorn's otherwise),
    ``service_url`` gunicorn's own (health and metrics are not proxied); ``master`` is the
    gunicorn master's pid and ``stderr`` its log file.
    """

    mode: str
    url: str
    service_url: str
    env: dict[str, str]
    token: str
    master: int
    stderr: Path
    reports: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)

    def download_url(self, name: str) -> str:
        return f"{self.url}{DOWNLOAD}?id={self.jobs[name]}"

    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port

    @property
    def audit_file(self) -> Path:
        configured = self.env.get("REPORTING_SVC_AUDIT_FILE")
        if configured:
            return Path(configured)
        return Path(self.env["REPORTING_SVC_VAR_DIR"]) / "audit.jsonl"

    @property
    def nginx_access_log(self) -> Path:
        """The site's JSON access log (config/nginx.conf writes it beside the store root)."""
        return Path(self.env["REPORTING_SVC_LOCAL_ROOT"]).parent / "reporting-svc.access.log"


def deploy(
    processes: Processes,
    mode: str,
    reports: dict[str, bytes],
    *,
    moto: str | None = None,
    workers: int = 4,
    nginx: bool = False,
    sparse: dict[str, int] | None = None,
    **extra_env: str,
) -> Deployment:
    """Publish ``reports`` (file name to content) and serve them in ``mode``.

    ``sparse`` names reports of that many zero bytes, written as sparse files so a report
    far larger than every socket buffer costs no disk and no memory to make.

    ``stream`` is gunicorn alone, ``x-accel`` gunicorn behind config/nginx.conf, ``proxy``
    gunicorn on an S3 store in a fresh bucket of the S3 server at ``moto``, ``s3 x-accel``
    the same behind config/nginx.conf; ``nginx`` puts config/nginx.conf in front of the
    other modes too. Reports go in
    through ``publish_report`` and the token comes from ``mint_token``, the code paths of
    ``reporting-svc publish`` and ``token``, in process: each command costs seconds here.
    """
    folder = processes.folder / f"{mode.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    env = service_env(folder)
    env["WEB_CONCURRENCY"] = str(workers)
    if mode in S3_DELIVERY:
        assert moto is not None, f"the {mode} mode needs an S3 server"
        env = {**s3_env(env, moto), "REPORTING_SVC_S3_DELIVERY": S3_DELIVERY[mode]}
    else:
        env["REPORTING_SVC_LOCAL_DELIVERY"] = mode
    env.update(extra_env)
    settings = load_settings(env)
    store = make_test_store(settings)
    upstream = folder / "upstream"
    upstream.mkdir()
    for name, size in (sparse or {}).items():
        with (upstream / name).open("wb") as handle:
            handle.truncate(size)
    for name, content in reports.items():
        (upstream / name).write_bytes(content)
    jobs = {}
    for name in [*reports, *(sparse or {})]:
        record = publish_report(
            store, upstream / name, report_name="Subject Data Extract", mode="test", study_id=STUDY
        )
        jobs[name] = record.id
    service = processes.serve(env)
    port = urlsplit(service).port
    [master] = [p.pid for p in processes.started if f"127.0.0.1:{port}" in p.args]
    base = service
    if nginx or mode.endswith("x-accel"):
        base = processes.behind_nginx(service, Path(env["REPORTING_SVC_LOCAL_ROOT"]))
    return Deployment(
        mode=mode,
        url=base,
        service_url=service,
        env=env,
        token=mint_token(settings, "alice", [parse_grant(GRANT)], ttl=3600),
        master=master,
        stderr=processes.folder / f"serve-{port}.stderr",
        reports=dict(reports),
        jobs=jobs,
    )


def make_test_store(settings: Settings) -> Store:
    """The deployment's store, with moto's test credentials given explicitly for S3
    (the environment that carries them is the service's, not this process's)."""
    if settings.store != "s3":
        return make_store(settings)
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return S3Store(client, settings.s3_bucket, settings.s3_prefix)


def wait_for_workers(master: int, count: int, timeout: float = 30.0) -> set[int]:
    """Poll until the master has ``count`` live workers (or the timeout); returns their pids."""
    deadline = time.monotonic() + timeout
    pids = children(master)
    while len(pids) != count and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = children(master)
    return pids


def records_by_request(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The audit trail's records grouped by requestId, in file order."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if path.exists():
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            grouped[record["requestId"]].append(record)
    return grouped


def wait_for_records(
    path: Path, expected: dict[str, int], timeout: float = 30.0
) -> dict[str, list[dict[str, Any]]]:
    """Poll the trail until each request id has its number of records, or the timeout.

    ``end`` records are written when the server closes the body, which may be just after
    the client has read the last byte.
    """
    deadline = time.monotonic() + timeout
    while True:
        grouped = records_by_request(path)
        done = all(len(grouped.get(i, [])) >= n for i, n in expected.items())
        if done or time.monotonic() > deadline:
            return grouped
        time.sleep(0.1)
