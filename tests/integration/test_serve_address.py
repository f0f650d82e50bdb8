"""Black-box: where ``serve`` listens (``--bind``, ``GUNICORN_CMD_ARGS``, ``make run
BIND=``), and what it says when it cannot."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from harness.processes import free_port
from tests.integration.processes import Processes, printed_lines, run_cli

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_env(tmp_path: Path) -> dict[str, str]:
    """The embedded default in a home of its own, one worker, and a temporary directory
    of its own, where a leaked metrics folder would show."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REPORTING_SVC_")}
    (tmp_path / "tmp").mkdir()
    env.update(
        REPORTING_SVC_HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"), WEB_CONCURRENCY="1"
    )
    return env


def test_a_taken_address_stops_serve_in_one_line_before_any_curl_line(
    fresh_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]

        result = run_cli(
            "serve", "--init", "--bind", f"127.0.0.1:{port}", env=fresh_env, check=False
        )

    named = [line for line in result.stderr.splitlines() if str(port) in line]
    assert result.returncode == 1
    assert result.stdout == ""
    assert named == [
        f"reporting-svc: error: cannot listen on 127.0.0.1:{port}: Address already in use;"
        " stop what holds it, or choose another address (serve --bind HOST:PORT,"
        " make run BIND=HOST:PORT)"
    ]
    assert "Retrying" not in result.stderr and "Traceback" not in result.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_gunicorn_cmd_args_bind_wins_and_the_curl_lines_name_where_it_listens(
    processes: Processes, fresh_env: dict[str, str], tmp_path: Path
) -> None:
    wanted = free_port()
    env = {**fresh_env, "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{wanted}"}

    processes.serve(env, "--init", cwd=tmp_path, listens_on=wanted)

    stdout = next(tmp_path.glob("serve-*.stdout"))
    download, listing = printed_lines(stdout, 2)
    ignored = int(stdout.name.removeprefix("serve-").removesuffix(".stdout"))
    assert f"'http://127.0.0.1:{wanted}/" in download and f"'http://127.0.0.1:{wanted}/" in listing
    subprocess.run(["bash", "-c", download], cwd=tmp_path, check=True, timeout=30)
    assert (tmp_path / "subject-data-extract.csv").read_text().startswith("subjectId,")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ignored), timeout=5).close()
    processes.stop_all()
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("variables", "command"),
    [([], "serve --init "), (["BIND=127.0.0.1:9000"], "serve --init --bind 127.0.0.1:9000")],
)
def test_make_run_serves_on_bind(variables: list[str], command: str) -> None:
    planned = subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", "run", *variables],
        cwd=PROJECT,
        # Not the settings of a make this runs under (make test): its flags would reach
        # this make, and its level would make it announce its directory.
        env={
            key: value
            for key, value in os.environ.items()
            if key not in {"BIND", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()

    assert planned[-1].endswith(f"/reporting-svc {command}")
