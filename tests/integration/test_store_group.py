"""The guide's store permissions: nginx, as another account, reads reports through a group.

The service writes the store for its owner and group alone (reporting_svc.file_modes); the
deployment gives the store a group nginx's user is in, with the set-group-ID bit so every
job's folder and file takes it. nginx then serves x-accel downloads, and an account that
is not in the group (here: the group taken off one job's folder) reads nothing. nginx's
workers can only run as another account when the test runs as root.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from reporting_svc.storage.layout import content_key
from tests.integration.processes import Processes, publish_with_cli, service_env, token_with_cli
from tests.support import DOWNLOAD, STUDY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="nginx runs as another account only for root"),
]
NGINX_USER, FILES_GROUP = "nobody", "nogroup"


@pytest.fixture
def deployment(processes: Processes) -> Iterator[Path]:
    """/srv/reporting-svc as the deployment guide sets it up: a folder nginx may only pass through,
    a store of the files group with the set-group-ID bit, a var folder nginx cannot enter.

    It asks for ``processes`` so that the servers are stopped before the folder is removed:
    a service still running writes into var while rmtree empties it."""
    pwd.getpwnam(NGINX_USER)
    folder = Path(tempfile.mkdtemp(prefix="reporting-svc-", dir="/tmp"))
    try:
        folder.chmod(0o711)
        (folder / "reports").mkdir()
        os.chown(folder / "reports", -1, grp.getgrnam(FILES_GROUP).gr_gid)
        (folder / "reports").chmod(0o2750)
        yield folder
    finally:
        shutil.rmtree(folder)


def test_nginx_reads_reports_through_the_store_group_and_nobody_else_does(
    deployment: Path, processes: Processes
) -> None:
    env = {**service_env(deployment), "REPORTING_SVC_LOCAL_DELIVERY": "x-accel"}
    report = deployment / "extract.csv"
    report.write_bytes(os.urandom(70_000))
    record = publish_with_cli(env, report)
    store = deployment / "reports"
    nginx = processes.behind_nginx(processes.serve(env), store, user=f"{NGINX_USER} {FILES_GROUP}")
    token = token_with_cli(env, f"{STUDY}:test:REPORTING_VIEW")

    def download() -> requests.Response:
        return requests.get(
            f"{nginx}{DOWNLOAD}",
            params={"id": record["id"]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    content = store / content_key(record["id"])
    assert stat.S_IMODE(content.stat().st_mode) == 0o640
    assert grp.getgrgid(content.stat().st_gid).gr_name == FILES_GROUP
    assert stat.S_IMODE(content.parent.stat().st_mode) == 0o2750
    served = download()
    assert served.status_code == 200
    assert served.content == report.read_bytes()

    os.chown(content.parent, -1, 0)
    assert download().status_code == 403
