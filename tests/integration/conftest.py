"""Fixtures for the integration tests: real processes on 127.0.0.1, stopped after use."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import postgres
from tests.integration import processes as p


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the service's commands: a local store and var dir under tmp_path."""
    return p.service_env(tmp_path)


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``reporting-svc ARGS`` with an environment; returns the completed process."""
    return p.run_cli


@pytest.fixture
def cli_publish() -> Callable[..., dict[str, Any]]:
    """``cli_publish(env, path, *scope_options)``: publish with the command, get the record."""
    return p.publish_with_cli


@pytest.fixture
def cli_token() -> Callable[..., str]:
    """``cli_token(env, *grants)``: a token minted with the command."""
    return p.token_with_cli


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[p.Processes]:
    """The servers this test starts; all stopped when it ends."""
    started = p.Processes(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[p.Processes]:
    """Servers shared by one module's tests, for read-only tests that need the same setup."""
    started = p.Processes(tmp_path_factory.mktemp("module"))
    yield started
    started.stop_all()


@pytest.fixture
def serve(processes: p.Processes) -> Callable[..., str]:
    """``serve(env, *args, cwd=None)``: start ``reporting-svc serve``; returns its URL."""
    return processes.serve


@pytest.fixture
def reload_server(processes: p.Processes) -> Callable[[], None]:
    """``reload_server()``: SIGHUP the last server ``serve`` started; gunicorn restarts workers."""

    def reload() -> None:
        os.kill(processes.started[-1].pid, signal.SIGHUP)

    return reload


@pytest.fixture
def nginx(processes: p.Processes) -> Callable[..., str]:
    """``nginx(http_block_for_port)``: start real nginx on a free port; returns its URL."""
    return processes.nginx


@pytest.fixture
def behind_nginx(processes: p.Processes) -> Callable[..., str]:
    """``behind_nginx(upstream_url, store_root)``: config/nginx.conf in front of a service."""
    return processes.behind_nginx


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's own S3 server, one for the session; yields its endpoint URL."""
    started = p.Processes(tmp_path_factory.mktemp("moto"))
    yield started.moto_server()
    started.stop_all()


@pytest.fixture
def s3_env(service_env: dict[str, str], moto_server: str) -> dict[str, str]:
    """Environment for an S3 store in a fresh bucket on moto's server."""
    return p.s3_env(service_env, moto_server)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Postgres]:
    """A private PostgreSQL server on 127.0.0.1, one for the session."""
    server = postgres.start()
    yield server
    server.stop()


@pytest.fixture
def own_postgres() -> Iterator[postgres.Postgres]:
    """A server of this test's own, for a test that stops, freezes or restarts it."""
    server = postgres.start()
    yield server
    server.thaw()
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: postgres.Postgres) -> str:
    """A new empty database on the session's server: a catalog URL of its own."""
    return postgres_server.create_database()
