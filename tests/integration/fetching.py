"""The fetch client against a live service: the deployment it pulls from and the client run.

The service is gunicorn with x-accel behind the project's config/nginx.conf; ``link_rate``
adds nginx's ``limit_rate`` to it, a slow link that lets a test stop the client mid-file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import nginx
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog import make_catalog
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings
from reporting_svc.storage import make_store
from reporting_svc.storage.layout import content_key, record_key
from tests.integration.processes import BIN, Processes, run_cli, service_env
from tests.support import STUDY

GRANT = f"{STUDY}:test,active:REPORTING_VIEW"


@dataclass
class Service:
    """A running deployment: where clients connect, the service's environment and folder."""

    url: str
    env: dict[str, str]
    folder: Path
    published: int = 0
    tokens: list[str] = field(default_factory=list)

    @property
    def store(self) -> Path:
        return Path(self.env["REPORTING_SVC_LOCAL_ROOT"])

    def publish(
        self, content: bytes, file_name: str = "extract.csv", *options: str, mode: str = "test"
    ) -> dict[str, Any]:
        """Publish with the command under ``file_name``; returns the printed record."""
        self.published += 1
        path = self.folder / f"upload-{self.published}.bin"
        path.write_bytes(content)
        scope = options or ("--study-id", STUDY)
        result = run_cli(
            "publish", str(path), "--report-name", "Subject Data Extract", "--mode", mode,
            "--file-name", file_name, *scope, env=self.env,
        )  # fmt: skip
        record: dict[str, Any] = json.loads(result.stdout)
        return record

    def publish_here(self, content: bytes, file_name: str, *, mode: str = "test") -> dict[str, Any]:
        """``publish``'s code run in this process, into the same store and catalog, for a
        test that publishes dozens of runs (each command costs a second or more); returns
        the record as the command prints it."""
        self.published += 1
        path = self.folder / f"upload-{self.published}.bin"
        path.write_bytes(content)
        settings = load_settings(self.env)
        record = publish_report(
            make_store(settings), path, catalog=make_catalog(settings),
            report_name="Subject Data Extract", mode=mode, study_id=STUDY, file_name=file_name,
            retain_days=settings.retention_days or None,
        )  # fmt: skip
        return asdict(record)

    def token(self, *grants: str, ttl: int = 3600) -> str:
        """A token minted with the command (an expired one, which the command refuses, by
        the code behind it); remembered, so a test can look for it in logs."""
        args = [arg for grant in grants or (GRANT,) for arg in ("--grant", grant)]
        if ttl > 0:
            token = run_cli(
                "token", "--subject", "alice", *args, "--ttl", str(ttl), env=self.env
            ).stdout.strip()
        else:
            parsed = [parse_grant(grant) for grant in grants or (GRANT,)]
            token = mint_token(load_settings(self.env), "alice", parsed, ttl=ttl)
        self.tokens.append(token)
        return token

    def replace_file(self, job_id: str, content: bytes) -> None:
        """Test-only store edit: other bytes under the same id, the record saying so."""
        (self.store / content_key(job_id)).write_bytes(content)
        record_path = self.store / record_key(job_id)
        record = json.loads(record_path.read_text())
        record.update(size=len(content), sha256=hashlib.sha256(content).hexdigest())
        record_path.write_text(json.dumps(record))

    def rename(self, job_id: str, file_name: str) -> None:
        """Test-only store edit: a record naming its file ``file_name``, which ``publish``
        would refuse."""
        record_path = self.store / record_key(job_id)
        record = json.loads(record_path.read_text())
        record.update(fileName=file_name)
        record_path.write_text(json.dumps(record))

    def audit_records(self) -> list[dict[str, Any]]:
        trail = Path(self.env["REPORTING_SVC_VAR_DIR"]) / "audit.jsonl"
        return [json.loads(line) for line in trail.read_text().splitlines()]

    def log_texts(self) -> Iterator[tuple[Path, str]]:
        """Every log, trail and output the service and nginx wrote, with its path."""
        for path in self.folder.rglob("*"):
            if path.is_file() and path.suffix in (".log", ".stderr", ".stdout", ".jsonl"):
                yield path, path.read_text(errors="replace")


def deploy(
    processes: Processes, *, rate: str | None = None, link_rate: str | None = None
) -> Service:
    """gunicorn (x-accel) behind config/nginx.conf; ``rate`` keeps nginx's request limit."""
    folder = processes.folder
    env = {**service_env(folder), "REPORTING_SVC_LOCAL_DELIVERY": "x-accel", "WEB_CONCURRENCY": "1"}
    upstream = processes.serve(env)
    store = Path(env["REPORTING_SVC_LOCAL_ROOT"])
    store.mkdir(parents=True, exist_ok=True)

    def site(port: int) -> str:
        text = nginx.site(port, upstream, store, folder, rate=rate)
        if link_rate:
            text = text.replace(
                "send_timeout 60s;", f"send_timeout 60s;\n    limit_rate {link_rate};"
            )
        return text

    return Service(processes.nginx(site), env, folder)


@dataclass
class Fetched:
    """A finished fetch: exit status, its JSON events (every line parsed), standard error."""

    returncode: int
    events: list[dict[str, Any]]
    stdout: str
    stderr: str

    def of(self, event: str) -> list[dict[str, Any]]:
        return [entry for entry in self.events if entry["event"] == event]


def client_env(token: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REPORTING_SVC_")}
    if token is not None:
        env["REPORTING_SVC_TOKEN"] = token
    return env


def fetch_command(url: str, dest: Path, *args: str) -> list[str]:
    return [str(BIN / "reporting-svc"), "fetch", "--url", url, "--dest", str(dest), *args]


def fetch(url: str, dest: Path, *args: str, token: str | None) -> Fetched:
    """Run ``reporting-svc fetch`` to the end; its standard output must be JSON lines only."""
    result = subprocess.run(
        fetch_command(url, dest, *args),
        env=client_env(token),
        capture_output=True,
        text=True,
        timeout=300,
    )
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return Fetched(result.returncode, events, result.stdout, result.stderr)


# A small Python process runs the client and reports its child's peak resident memory. Not
# measured from here: a child forked from the test process counts the test's own pages
# (hundreds of MiB of report content) until it execs.
MEASURE = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(status)
"""


def fetch_measured(url: str, dest: Path, *args: str, token: str) -> tuple[Fetched, int, float]:
    """``fetch``, with the client's peak resident memory (KiB) and wall-clock seconds, for
    the record rather than for an assertion on time."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *fetch_command(url, dest, *args)],
        env=client_env(token),
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.monotonic() - started
    stderr, _, peak = result.stderr.rstrip("\n").rpartition("\n")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return Fetched(result.returncode, events, result.stdout, stderr), int(peak), seconds


def sha256sum_check(dest: Path) -> subprocess.CompletedProcess[str]:
    """GNU ``sha256sum -c SHA256SUMS`` in the folder, as a user would run it."""
    return subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"],
        cwd=dest,
        capture_output=True,
        text=True,
        check=False,
    )
