"""Fixtures shared by every test: settings, app, client, report and token factories."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from flask import Flask
from flask.testing import FlaskClient
from moto import mock_aws

from harness.processes import free_port
from reporting_svc import create_app
from reporting_svc.audit.chain import verify
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog import Catalog
from reporting_svc.catalog.commands import upgrade_host_catalog
from reporting_svc.cli import main
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings, load_settings
from reporting_svc.storage import JobRecord, Store, StoreError
from tests.support import BUCKET, DOWNLOAD, DOWNLOAD_LIST, SECRET, STUDY, Clock, public_jwk


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The user data directory of every test and the commands it runs, so that none writes
    into the real default home (settings.default_home): a command given no deployment
    setting, like the guide's role commands (harness/postgres.py), finds its home here."""
    folder = tmp_path_factory.mktemp("data-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(folder))
        yield folder


class _SearchPaths(list[str]):
    """A loader's search paths, each kept once: every boto3 session appends its own."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@pytest.fixture(scope="session", autouse=True)
def one_botocore_loader() -> Iterator[None]:
    """One botocore loader for every boto3 session of the run. Each test's S3 store and
    moto's mock make sessions of their own, and parsing S3's service model again for each
    was most of a unit S3 test's time; the models are the same files for the whole run."""
    shared = botocore.loaders.create_loader()
    shared._search_paths = _SearchPaths(shared.search_paths)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", lambda *_args: shared)
        yield


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: a store and var dir under tmp_path, a known secret, and an
    SQLite catalog upgraded as ``serve`` leaves it before its workers start (no request
    migrates); ``upgraded=False`` leaves the catalog as it is."""

    def make(*, upgraded: bool = True, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "local_root": tmp_path / "reports",
            "var_dir": tmp_path / "var",
            "jwt_secret": SECRET,
        }
        values.update(overrides)
        settings = load_settings({}, values)
        if upgraded:
            upgrade_host_catalog(settings)
        return settings

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def clock(app: Flask) -> Clock:
    """The app's clock (expiry, listing), held still at the test's start until moved."""
    held = Clock(datetime.now(UTC))
    services = app.extensions["reporting_svc"]
    app.extensions["reporting_svc"] = dataclasses.replace(services, clock=held)
    return held


@pytest.fixture
def store(app: Flask) -> Store:
    store: Store = app.extensions["reporting_svc"].store
    return store


@pytest.fixture
def catalog(app: Flask) -> Catalog:
    catalog: Catalog = app.extensions["reporting_svc"].catalog
    return catalog


@pytest.fixture
def publish(store: Store, catalog: Catalog, tmp_path: Path) -> Callable[..., JobRecord]:
    """Publish a report into the app's store and catalog:
    ``publish(b"bytes", "name.csv", **options)``."""
    counter = iter(range(1_000_000))

    def make(
        content: bytes = b"subjectId,visit\nS-0001,Screening\n",
        file_name: str = "report.csv",
        *,
        study_id: str | None = STUDY,
        mode: str = "test",
        report_name: str = "Subject Data Extract",
        **options: Any,
    ) -> JobRecord:
        folder = tmp_path / "upstream" / str(next(counter))
        folder.mkdir(parents=True)
        path = folder / file_name
        path.write_bytes(content)
        return publish_report(
            store,
            path,
            report_name=report_name,
            mode=mode,
            study_id=study_id,
            catalog=catalog,
            **options,
        )

    return make


@pytest.fixture
def fail_mid_stream(store: Store, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """``fail_mid_stream()``: from now on each body the store opens gives its first read,
    then raises StoreError, as an S3 connection reset half way does."""

    def arm() -> None:
        real_open_range = store.open_range

        def failing_after_one_read(*args: Any) -> Any:
            stored = real_open_range(*args)
            real_read = stored.body.read

            def read_once(size: int) -> bytes:
                stored.body.read = fail  # type: ignore[method-assign]
                return bytes(real_read(size))

            def fail(size: int) -> bytes:
                raise StoreError("connection reset by S3")

            stored.body.read = read_once  # type: ignore[method-assign]
            return stored

        monkeypatch.setattr(store, "open_range", failing_after_one_read)

    return arm


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    """Mint a token: ``token("STUDY:test:REPORTING_VIEW", ..., subject="alice", ttl=60)``."""

    def make(*grants: str, subject: str = "alice", ttl: int = 300) -> str:
        return mint_token(settings, subject, [parse_grant(g) for g in grants], ttl=ttl)

    return make


@pytest.fixture
def bearer(token: Callable[..., str]) -> str:
    """A token allowed to download the test-mode reports of STUDY."""
    return token(f"{STUDY}:test:REPORTING_VIEW")


@pytest.fixture
def download(client: FlaskClient) -> Callable[..., Any]:
    """Call the download endpoint: ``download({"id": ...}, token=..., method="GET")``."""

    def call(
        query: dict[str, str] | str,
        token: str | None = None,
        method: str = "GET",
        headers: dict[str, str] | None = None,
    ) -> Any:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return client.open(
            DOWNLOAD, method=method, query_string=query, headers=all_headers, buffered=True
        )

    return call


@pytest.fixture
def listing(client: FlaskClient) -> Callable[..., Any]:
    """Call the download list: ``listing({"studyId": ..., "limit": "10", ...}, token=...)``."""

    def call(query: dict[str, str] | str, token: str | None = None, **headers: str) -> Any:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return client.get(DOWNLOAD_LIST, query_string=query, headers=headers)

    return call


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A host where boto3 finds no credentials anywhere: no variables, no files, no
    instance metadata to ask."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def unreachable_s3(make_settings: Callable[..., Settings]) -> Settings:
    """Settings of an S3 store whose endpoint nothing listens on."""
    return make_settings(
        store="s3",
        s3_bucket=BUCKET,
        s3_region="us-east-1",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
    )


@pytest.fixture
def s3_bucket() -> Iterator[Any]:
    """moto's in-process S3 with an empty bucket; yields the boto3 client."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def write_jwks(tmp_path: Path) -> Callable[..., Path]:
    """Write a JWKS file of public keys: ``write_jwks({"kid": private_key, ...})``."""
    path = tmp_path / "jwks.json"

    def write(keys: dict[str, Any]) -> Path:
        path.write_text(json.dumps({"keys": [public_jwk(key, kid) for kid, key in keys.items()]}))
        return path

    return write


@pytest.fixture
def audit_records(tmp_path: Path) -> Callable[..., list[dict[str, Any]]]:
    """The records of an audit trail (default: the test app's), after checking its chain."""

    def read(path: Path | None = None) -> list[dict[str, Any]]:
        path = path or tmp_path / "var" / "audit.jsonl"
        if not path.exists():
            return []
        with path.open("rb") as handle:
            lines = list(handle)
        verdict = verify(lines)
        assert verdict.ok, f"the audit chain breaks: {verdict}"
        return [json.loads(line) for line in lines]

    return read


@pytest.fixture
def command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run ``reporting-svc ARGS`` in process with the test's settings: (exit, out, err).

    The environment names what ``make_settings`` does (store, var dir, secret), plus any
    ``REPORTING_SVC_*`` given as keywords, e.g. ``command("catalog", "check", CATALOG_URL=…)``.
    """
    for name in list(os.environ):
        if name.startswith("REPORTING_SVC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REPORTING_SVC_LOCAL_ROOT", str(tmp_path / "reports"))
    monkeypatch.setenv("REPORTING_SVC_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REPORTING_SVC_JWT_SECRET", SECRET)

    def run(*args: str, **environ: str) -> tuple[int, str, str]:
        for name, value in environ.items():
            monkeypatch.setenv(f"REPORTING_SVC_{name}", value)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def audit_command(
    command: Callable[..., tuple[int, str, str]],
) -> Callable[..., tuple[int, str, str]]:
    """Run ``reporting-svc audit ARGS`` in process with the test's var dir: (exit, out, err).

    Without a FILE argument the commands read tmp_path/var/audit.jsonl, the test app's trail.
    """

    def run(*args: str) -> tuple[int, str, str]:
        return command("audit", *args)

    return run


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A small CSV report file, as upstream would hand it over."""
    path = tmp_path / "upstream" / "extract.csv"
    path.parent.mkdir()
    path.write_bytes(b"subjectId,visit\nS-0001,Screening\n")
    return path


@pytest.fixture
def publish_command(
    command: Callable[..., tuple[int, str, str]], report: Path
) -> Callable[..., tuple[int, str, str]]:
    """``publish_command(*extra_options)``: publish ``report`` for STUDY with the CLI."""

    def run(*options: str, path: Path = report) -> tuple[int, str, str]:
        return command(
            "publish",
            str(path),
            "--report-name",
            "Subject Data Extract",
            "--mode",
            "test",
            "--study-id",
            STUDY,
            *options,
        )

    return run


_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Grep every log the whole run produced for the secret and for any token.

    Servers started by the tests log to ``*.stderr`` and nginx to ``*.log`` under the
    run's temporary directory; neither may ever hold the signing secret or a JWT.
    """
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = factory.getbasetemp()
    leaks = [
        str(path)
        for pattern in ("*.stderr", "*.log")
        for path in base.rglob(pattern)
        if path.is_file() and (SECRET.encode() in (data := path.read_bytes()) or _JWT.search(data))
    ]
    if leaks:
        session.config.get_terminal_writer().line(
            "a secret or a token was logged in: " + ", ".join(leaks), red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
