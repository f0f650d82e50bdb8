"""A deployment's home (settings.py): every command finds the same deployment from any
directory, and one that would start a new, empty deployment refuses unless asked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reporting_svc import cli, create_app
from reporting_svc.settings import default_home, load_settings
from tests.support import DOWNLOAD, DOWNLOAD_LIST, SECRET, STUDY

GRANT = f"{STUDY}:test:REPORTING_VIEW"


@pytest.fixture
def user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A user's home directory with no deployment yet and no ``REPORTING_SVC_*`` set; the
    working directory is an unrelated folder."""
    for name in list(os.environ):
        if name.startswith("REPORTING_SVC_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(_folder(tmp_path / "elsewhere"))
    return tmp_path / "user"


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(_folder(cwd))
    return cli.main(list(args))


@pytest.mark.parametrize(
    ("environ", "home"),
    [
        ({"XDG_DATA_HOME": "/data", "HOME": "/u"}, "/data/reporting-svc"),
        ({"HOME": "/u"}, "/u/.local/share/reporting-svc"),
        ({"XDG_DATA_HOME": "relative", "HOME": "/u"}, "/u/.local/share/reporting-svc"),
    ],
)
def test_default_home_is_the_users_not_the_working_directorys(
    environ: dict[str, str], home: str
) -> None:
    assert default_home(environ) == Path(home)


def test_relative_paths_are_taken_inside_the_home(
    user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "deployment"
    environ = {
        "REPORTING_SVC_HOME": str(home),
        "REPORTING_SVC_LOCAL_ROOT": "store",
        "REPORTING_SVC_AUDIT_FILE": "trail.jsonl",
        "REPORTING_SVC_JWT_SECRET": SECRET,
    }

    settings = load_settings(environ)

    assert settings.home == home
    assert settings.local_root == home / "store"
    assert settings.var_dir == home / "var"
    assert settings.audit_path == home / "trail.jsonl"
    assert settings.catalog_database_url == f"sqlite:///{home / 'var' / 'catalog.sqlite3'}"
    assert list(Path.cwd().iterdir()) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["token", "--subject", "alice", "--grant", GRANT], None),
        (["publish", "report.csv", "--report-name", "R", "--mode", "test", "--tenant"], None),
        (["catalog", "check"], None),
        (["token", "--subject", "alice", "--grant", GRANT], "chosen"),
    ],
)
def test_a_command_refuses_a_home_holding_no_deployment(
    user: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    named: str | None,
) -> None:
    home = user / ".local" / "share" / "reporting-svc"
    if named:
        home = _folder(tmp_path / named)
        monkeypatch.setenv("REPORTING_SVC_HOME", str(home))
    (Path.cwd() / "report.csv").write_text("a,b\n")

    code = cli.main(args)

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"reporting-svc: error: no deployment in {home};")
    assert "REPORTING_SVC_HOME" in err and "--init" in err
    assert not user.exists()
    assert list(Path.cwd().iterdir()) == [Path.cwd() / "report.csv"]
    assert not (home / "var").exists()


def test_commands_in_different_directories_act_on_one_deployment(
    user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "upstream" / "extract.csv"
    _folder(report.parent)
    report.write_bytes(b"subjectId,visit\nS-0001,Screening\n")
    publish = ["publish", str(report), "--report-name", "R", "--mode", "test", "--study-id", STUDY]

    assert _run(*publish, "--init", cwd=tmp_path / "one", monkeypatch=monkeypatch) == 0
    record = json.loads(capsys.readouterr().out)
    token_args = ["token", "--subject", "alice", "--grant", GRANT]
    assert _run(*token_args, cwd=tmp_path / "two", monkeypatch=monkeypatch) == 0
    token = capsys.readouterr().out.strip()
    monkeypatch.chdir(_folder(tmp_path / "three"))
    client = create_app(load_settings()).test_client()
    auth = {"Authorization": f"Bearer {token}"}

    download = client.get(DOWNLOAD, query_string={"id": record["id"]}, headers=auth)
    listing = client.get(
        DOWNLOAD_LIST, query_string={"studyId": STUDY, "limit": 20, "offset": 0}, headers=auth
    )

    assert download.status_code == 200
    assert download.data == report.read_bytes()
    runs = listing.get_json()["result"]["reportRunStatus"]
    assert [run["downloadId"] for run in runs] == [record["id"]]
    assert (user / ".local" / "share" / "reporting-svc" / "var" / "dev-jwt-secret").is_file()
    for folder in ("one", "two", "three"):
        assert list((tmp_path / folder).iterdir()) == []
