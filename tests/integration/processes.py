"""Starting and stopping the real processes of the integration tests, on 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from harness import nginx
from harness.nginx import S3Tls
from harness.processes import free_port, stop, wait_for_port
from tests.support import SECRET, STUDY

BIN = Path(sys.executable).parent


def service_env(folder: Path) -> dict[str, str]:
    """Environment for the service's commands: a local store and var dir under ``folder``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REPORTING_SVC_")}
    env.update(
        REPORTING_SVC_LOCAL_ROOT=str(folder / "reports"),
        REPORTING_SVC_VAR_DIR=str(folder / "var"),
        REPORTING_SVC_JWT_SECRET=SECRET,
        WEB_CONCURRENCY="2",
    )
    return env


def s3_env(base: dict[str, str], endpoint: str, *, ca_bundle: Path | None = None) -> dict[str, str]:
    """``base`` switched to an S3 store in a fresh bucket on the S3 server at ``endpoint``;
    ``ca_bundle`` is the CA file that signed an https server's certificate."""
    bucket = f"reports-{uuid.uuid4().hex[:12]}"
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    s3_client(endpoint, ca_bundle).create_bucket(Bucket=bucket)
    return {
        **base,
        **credentials,
        "REPORTING_SVC_STORE": "s3",
        "REPORTING_SVC_S3_BUCKET": bucket,
        "REPORTING_SVC_S3_PREFIX": "clinical/",
        "REPORTING_SVC_S3_REGION": "us-east-1",
        "REPORTING_SVC_S3_ENDPOINT_URL": endpoint,
        "REPORTING_SVC_S3_CA_BUNDLE": str(ca_bundle or ""),
    }


def s3_client(endpoint: str, ca_bundle: Path | None = None) -> Any:
    """A boto3 client of the S3 server at ``endpoint``, with its test credentials: for a
    test's own edits behind the service's back; ``ca_bundle`` for an https server."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        verify=str(ca_bundle) if ca_bundle else None,
    )


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``reporting-svc ARGS``; with ``check``, a failure fails the test with its stderr."""
    result = subprocess.run(
        [str(BIN / "reporting-svc"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"reporting-svc {args[0]} failed: {result.stderr}")
    return result


def upgrade_databases(env: dict[str, str]) -> None:
    """The deploy step of a deployment on PostgreSQL, as its owner takes it before the
    hosts start (no request migrates): ``catalog upgrade`` and, for a trail in PostgreSQL,
    ``audit upgrade``. An SQLite catalog needs none: ``serve`` and ``publish`` upgrade it."""
    run_cli("catalog", "upgrade", env=env)
    if "postgres" in env.get("REPORTING_SVC_AUDIT_SINK", ""):
        run_cli("audit", "upgrade", env=env)


def publish_with_cli(env: dict[str, str], path: Path, *options: str) -> dict[str, Any]:
    """``reporting-svc publish`` of a file as a test-mode report; returns the printed record.

    Scope options default to ``--study-id STUDY``; pass ``"--tenant"`` for a tenant report.
    """
    result = run_cli(
        "publish",
        str(path),
        "--report-name",
        "Subject Data Extract",
        "--mode",
        "test",
        *(options or ("--study-id", STUDY)),
        env=env,
    )
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def token_with_cli(env: dict[str, str], *grants: str) -> str:
    """``reporting-svc token`` for subject alice with the given grants."""
    args = [arg for grant in grants for arg in ("--grant", grant)]
    return run_cli("token", "--subject", "alice", *args, env=env).stdout.strip()


def printed_lines(path: Path, count: int, timeout: float = 30.0) -> list[str]:
    """The first ``count`` lines of a server's output file, once written: gunicorn prints
    the sample's curl lines just after it starts listening."""
    deadline = time.monotonic() + timeout
    while len(lines := path.read_text().splitlines()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} holds {lines} after {timeout}s")
        time.sleep(0.05)
    return lines[:count]


class Processes:
    """The servers one test (or one module) starts under ``folder``; ``stop_all`` ends them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[subprocess.Popen[Any]] = []

    def serve(
        self,
        env: dict[str, str],
        *extra: str,
        cwd: Path | None = None,
        listens_on: int | None = None,
    ) -> str:
        """Start ``reporting-svc serve`` (gunicorn) on a free port; returns its base URL.

        Its standard output and error go to ``serve-<port>.stdout`` / ``.stderr``.
        ``listens_on``: the port it listens on instead, when ``GUNICORN_CMD_ARGS`` names one.
        """
        port = free_port()
        with (
            (self.folder / f"serve-{port}.stdout").open("w") as out,
            (self.folder / f"serve-{port}.stderr").open("w") as err,
        ):
            process = self._start(
                [str(BIN / "reporting-svc"), "serve", "--bind", f"127.0.0.1:{port}", *extra],
                env=env,
                cwd=cwd or self.folder,
                stdout=out,
                stderr=err,
            )
        wait_for_port(listens_on or port, process)
        return f"http://127.0.0.1:{listens_on or port}"

    def nginx(self, http_block_for_port: Callable[[int], str], *, user: str | None = None) -> str:
        """Start real nginx on a free port with what ``http_block_for_port(port)`` returns;
        ``user`` as in ``harness.nginx.main_config``."""
        port = free_port()
        folder = self.folder / f"nginx-{port}"
        folder.mkdir()
        config = nginx.main_config(folder, http_block_for_port(port), user=user)
        process = self._start(
            nginx.command(folder, config),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def behind_nginx(
        self,
        upstream: str,
        store_root: Path,
        rate: str | None = None,
        *,
        s3_tls: S3Tls | None = None,
        user: str | None = None,
    ) -> str:
        """Put config/nginx.conf in front of a running service; returns nginx's URL.

        The per-client rate limit is lifted unless ``rate`` is given, so tests that send
        many requests measure the service rather than the limit; its log goes beside the
        store root. ``s3_tls`` is the resolver and CA file of an S3 server over https.
        """
        log_dir = store_root.absolute().parent
        return self.nginx(
            lambda port: nginx.site(port, upstream, store_root, log_dir, rate=rate, s3_tls=s3_tls),
            user=user,
        )

    def moto_server(self, tls: tuple[Path, Path] | None = None) -> str:
        """moto's own S3 server as a separate process; returns its endpoint URL.

        With ``tls`` (certificate and key files) it speaks https, named ``localhost``: the
        name its certificate is for, which nginx resolves and checks as it would AWS's.
        """
        port = free_port()
        options = ["-c", str(tls[0]), "-k", str(tls[1])] if tls else []
        process = self._start(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, process)
        return f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"

    def stop_all(self) -> None:
        for process in self.started:
            stop(process)

    def _start(self, command: list[str], **options: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(command, start_new_session=True, **options)
        self.started.append(process)
        return process
