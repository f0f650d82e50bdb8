"""The package as users install it: a wheel built from the sources, installed (not editable)
into fresh virtual environments outside the checkout, run from directories outside it.

The client's environment has the base install alone, the service's the ``server`` extra;
every command runs its environment's own ``reporting-svc``, never the checkout's code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.processes import free_port, stop, wait_for_port
from reporting_svc.api.paths import DOWNLOAD, DOWNLOAD_LIST, ROOT
from reporting_svc.lifecycle.sample import SAMPLE_JOB_ID, SAMPLE_STUDY_ID

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# What setuptools builds the wheel from (setup.cfg: packages, package data, metadata).
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "reporting_svc")
GRANT = f"{SAMPLE_STUDY_ID}:test:REPORTING_VIEW"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources: no build/ or egg-info is left in the
    checkout, and none from it can slip a file into the wheel."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (REPO / name).is_dir():
            ignored = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(REPO / name, source / name, ignore=ignored)
        else:
            shutil.copy2(REPO / name, source / name)
    built = tmp_path_factory.mktemp("dist")
    pip(sys.executable, "wheel", "--no-deps", "--wheel-dir", str(built), str(source))
    [found] = built.glob("reporting_svc-*.whl")
    return found


def installed(folder: Path, requirement: str) -> Path:
    """A fresh virtual environment in ``folder`` with ``requirement`` installed by the
    checkout's pip. Nothing is byte-compiled ahead: that halves an install's time, and
    what runs is compiled when first imported."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    pip(str(folder / "bin" / "python"), "install", "--no-compile", requirement)
    return folder


def pip(python: str, *args: str) -> None:
    """Run the checkout's pip for ``python``'s environment; a failure shows pip's output."""
    command = [sys.executable, "-m", "pip", "--python", python, "--quiet", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def python(venv: Path, code: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the environment's Python from ``cwd``, no PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def deployment_env(home: Path) -> dict[str, str]:
    """The one place that says which deployment the service's commands act on: the
    embedded default (local store, embedded catalog, development secret) under ``home``,
    which they also run in: its home (the local root's default is relative to it), with its
    var dir named, so the first command starts it. No variable of the checkout's
    environment (REPORTING_SVC_*, PYTHONPATH) reaches them."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REPORTING_SVC_") and key != "PYTHONPATH"
    }
    env.update(
        REPORTING_SVC_HOME=str(home), REPORTING_SVC_VAR_DIR=str(home / "var"), WEB_CONCURRENCY="1"
    )
    return env


def command(
    venv: Path, *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "reporting-svc"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[Any]]]:
    """The servers this test starts, each in its own session; all stopped when it ends."""
    processes: list[subprocess.Popen[Any]] = []
    yield processes
    for process in processes:
        stop(process)


def start(
    started: list[subprocess.Popen[Any]], argv: list[str], *, cwd: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[Any], str, Path]:
    """Start ``argv`` on a free port given as ``{port}``; returns it, its URL and where its
    output goes (``.stdout``, ``.stderr``), once the port accepts connections."""
    port = free_port()
    output = cwd / f"server-{port}"
    with (
        output.with_suffix(".stdout").open("w") as out,
        output.with_suffix(".stderr").open("w") as err,
    ):
        process = subprocess.Popen(
            [arg.format(port=port) for arg in argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    started.append(process)
    wait_for_port(port, process, timeout=60)
    return process, f"http://127.0.0.1:{port}", output


def printed(output: Path, text: str) -> str:
    """The output once it holds ``text``: what a server printed when it started."""
    deadline = time.monotonic() + 30
    while text not in output.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    return output.read_text()


def test_the_installed_wheel_serves_publishes_mints_fetches_and_documents_from_anywhere(
    wheel: Path, tmp_path: Path, started: list[subprocess.Popen[Any]]
) -> None:
    home = tmp_path / "deployment"
    elsewhere = tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    env = deployment_env(home)

    # The base install: its own package, no server package; fetch runs, the service's
    # commands say what to add and create nothing.
    client = installed(tmp_path / "client-venv", str(wheel))
    located = python(client, "import reporting_svc; print(reporting_svc.__file__)", cwd=elsewhere)
    assert Path(located.stdout.strip()).is_relative_to(client), located.stderr
    assert python(client, "import flask", cwd=elsewhere).returncode == 1
    assert command(client, "fetch", "--help", cwd=elsewhere, env=env).returncode == 0
    refused = command(client, "serve", cwd=home, env=env)
    assert refused.returncode == 2
    assert "pip install 'reporting-svc[server]'" in refused.stderr
    assert not (home / "var").exists()

    # The server extra, and the service's commands against one deployment.
    venv = installed(tmp_path / "server-venv", f"{wheel}[server]")
    located = python(venv, "import reporting_svc; print(reporting_svc.__file__)", cwd=elsewhere)
    assert Path(located.stdout.strip()).is_relative_to(venv), located.stderr
    minted = command(venv, "token", "--subject", "wheel", "--grant", GRANT, cwd=home, env=env)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    report = elsewhere / "visits.csv"
    report.write_bytes(b"subjectId,visit\nS-0009,Week 8\n")
    published = command(
        venv,
        "publish",
        str(report),
        "--report-name",
        "Visits",
        "--mode",
        "test",
        "--study-id",
        SAMPLE_STUDY_ID,
        cwd=home,
        env=env,
    )
    assert published.returncode == 0, published.stderr
    record = json.loads(published.stdout)

    serve = [str(venv / "bin" / "reporting-svc"), "serve", "--bind", "127.0.0.1:{port}"]
    server, base, output = start(started, serve, cwd=home, env=env)
    curl_lines = printed(output.with_suffix(".stdout"), base + DOWNLOAD_LIST)
    printed_token = re.search(r"Bearer ([\w.-]+)'", curl_lines)
    assert printed_token is not None
    assert f"'{base}{DOWNLOAD}?id={SAMPLE_JOB_ID}'" in curl_lines
    sample = get(base + DOWNLOAD, printed_token[1], id=SAMPLE_JOB_ID)
    assert sample.content.startswith(b"subjectId,")
    assert get(base + DOWNLOAD, token, id=record["id"]).content == report.read_bytes()
    listed = get(base + DOWNLOAD_LIST, token, studyId=SAMPLE_STUDY_ID, limit="20", offset="0")
    assert {SAMPLE_JOB_ID, record["id"]} <= set(re.findall(r"[0-9A-F]{32}", listed.text))
    docs = requests.get(f"{base}{ROOT}/docs", timeout=30)
    script = requests.get(f"{base}{ROOT}/docs/redoc.standalone.js", timeout=30)
    [shipped] = venv.glob(
        "lib/python*/site-packages/drf_spectacular_sidecar/**/redoc.standalone.js"
    )
    assert docs.status_code == 200
    assert f"{ROOT}/docs/redoc.standalone.js" in docs.text
    assert script.status_code == 200
    assert script.content == shipped.read_bytes()

    # The client's environment, base install alone, fetches the study from the service.
    fetched = command(
        client,
        "fetch",
        "--url",
        base,
        "--study",
        SAMPLE_STUDY_ID,
        "--dest",
        "pulled",
        cwd=elsewhere,
        env={**env, "REPORTING_SVC_TOKEN": token},
    )
    assert fetched.returncode == 0, fetched.stderr
    pulled = elsewhere / "pulled"
    assert (pulled / "subject-data-extract.csv").read_bytes() == sample.content
    assert (pulled / "visits.csv").read_bytes() == report.read_bytes()
    stop(server)

    # gunicorn itself, with the settings the package ships: its log is the service's JSON.
    gunicorn = [
        str(venv / "bin" / "gunicorn"),
        "--config",
        "python:reporting_svc.server.conf",
        "--bind",
        "127.0.0.1:{port}",
        "reporting_svc:create_app()",
    ]
    _, url, log = start(started, gunicorn, cwd=home, env=env)
    again = get(url + DOWNLOAD, token, id=record["id"])
    assert again.content == report.read_bytes()
    assert all(
        json.loads(line) for line in printed(log.with_suffix(".stderr"), '"GET').splitlines()
    )


def get(url: str, token: str, **params: str) -> requests.Response:
    """A GET with the token that must answer 200."""
    response = requests.get(
        url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response
