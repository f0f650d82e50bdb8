"""The console script with the base install alone: the fetch client runs, the service's
commands say which extra to install. Each case runs in a fresh interpreter, where the
server extra's packages cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The top-level modules of the server extra's packages (setup.cfg) and what they pull in.
SERVER_MODULES = (
    "alembic",
    "apispec",
    "boto3",
    "botocore",
    "cachetools",
    "django",
    "flask",
    "gunicorn",
    "jwt",
    "marshmallow",
    "prometheus_client",
    "psycopg",
    "sqlalchemy",
    "webargs",
)
# Run in the child: block the server's modules, then run the given code.
BLOCKED = textwrap.dedent(
    f"""
    import sys
    for name in {SERVER_MODULES!r}:
        sys.modules[name] = None  # an import of it raises ModuleNotFoundError
    from reporting_svc.console import main
    """
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_package_and_the_fetch_client_import_none_of_the_services_packages() -> None:
    imported = run_python(
        "import sys, reporting_svc, reporting_svc.console, reporting_svc.fetch.command\n"
        f"print(sorted(set({SERVER_MODULES!r}) & set(sys.modules)))"
    )

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["serve", "publish report.csv", "token", "check"])
def test_without_the_server_extra_a_service_command_says_what_to_install(command: str) -> None:
    result = run_python(BLOCKED + f"sys.exit(main({command.split()!r}))")

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("reporting-svc: error: ")
    assert "pip install 'reporting-svc[server]'" in line


def test_without_the_server_extra_fetch_runs_and_hides_stray_values() -> None:
    helped = run_python(BLOCKED + "main(['fetch', '--help'])")
    listed = run_python(BLOCKED + "main(['--help'])")
    stray = run_python(
        BLOCKED + "main(['fetch', '--url', 'http://127.0.0.1:9', '--study', 'S', "
        "'--dest', 'out', '--token', 'SECRET-VALUE'])"
    )

    assert helped.returncode == 0, helped.stderr
    assert "--url" in helped.stdout
    assert listed.returncode == 0, listed.stderr
    assert "fetch" in listed.stdout
    assert "reporting-svc[server]" in listed.stdout
    assert stray.returncode == 2
    assert "--token" in stray.stderr
    assert "SECRET-VALUE" not in stray.stderr
