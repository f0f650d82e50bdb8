"""Fixtures for the reliability suite: the integration tests' real processes, under stress.

The servers are started by ``tests.integration.processes``; every one is stopped when
the test (or, for moto's S3 server, the session) that started it ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import several_hosts
from harness.processes import stop
from tests.integration.processes import Processes


def load_seconds() -> float:
    """How long the load tests run: ``RELIABILITY_SECONDS``, else 30 in CI and 60 elsewhere."""
    default = "30" if os.environ.get("CI", "").lower() == "true" else "60"
    return float(os.environ.get("RELIABILITY_SECONDS", default))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """The servers this test starts; all stopped when it ends, the last started first.

    Front-ends go first: nginx holds keep-alive connections to gunicorn, which would
    otherwise wait for them through its graceful timeout.
    """
    started = Processes(tmp_path)
    yield started
    stop_in_reverse(started)


def stop_in_reverse(started: Processes) -> None:
    for process in reversed(started.started):
        stop(process)


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    """Servers shared by one module's tests; each test sends its own request ids."""
    started = Processes(tmp_path_factory.mktemp("module"))
    yield started
    stop_in_reverse(started)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's own S3 server, one for the session; yields its endpoint URL.

    Tests that stop or kill an S3 server start their own with ``processes.moto_server()``.
    """
    started = Processes(tmp_path_factory.mktemp("moto"))
    yield started.moto_server()
    started.stop_all()


#: What the several-hosts tests' one caller needs: 64 clients at once on one token, and a
#: thread for each on any host (admission is not what they check).
ONE_CALLER_64_CLIENTS = {"GUNICORN_THREADS": "66", "REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT": "64"}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[several_hosts.State]:
    """docs/deploying.md's several-hosts recipe, started once for the module by the code
    ``make hosts`` runs: S3, PostgreSQL under the guide's roles, three hosts with the default
    number of workers, nginx (its per-client limits lifted: every client here is 127.0.0.1).
    Each test publishes into a study of its own; the module's end stops it all (its dozen
    workers are not left idling through the rest of the session)."""
    state = several_hosts.up(
        tmp_path_factory.mktemp("hosts"), environ=ONE_CALLER_64_CLIENTS, client_limits=False
    )
    yield state
    several_hosts.down(Path(state.folder))


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs of the test's own, for a disk that fills up (mounting needs root, as in
    CI); detached when the test ends, even while a server still holds a file open on it."""
    folder = tmp_path / "volume"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)
