"""gunicorn's settings as the package ships them, and the checkout's file that names them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gunicorn.config import Config

REPO = Path(__file__).resolve().parents[1]
# Loads both ways in a fresh interpreter (the settings make a metrics directory unless one
# is given) and prints the gunicorn settings each one sets, the worker class, and whether
# prometheus_client was imported, which must wait for the metrics directory to be set.
LOAD = """
import importlib, json, runpy, sys
from gunicorn.config import Config
known = Config().settings
checkout = runpy.run_path(sys.argv[1])
package = vars(importlib.import_module("reporting_svc.server.conf"))
print(json.dumps([sorted(k for k in names if k in known) for names in (checkout, package)]))
print(json.dumps(checkout["worker_class"]), "prometheus_client" in sys.modules)
"""


def test_the_checkouts_config_file_sets_every_setting_the_package_ships(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(REPO / "config" / "gunicorn.conf.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    names, loaded = result.stdout.splitlines()
    checkout, package = json.loads(names)
    assert checkout == package
    hooks = {"child_exit", "on_starting", "when_ready"}
    assert {"worker_class", "logger_class", "threads", "bind", *hooks} <= set(package)
    assert loaded == '"reporting_svc.server.worker.EnvelopeThreadWorker" False'
    assert set(package) <= set(Config().settings)
