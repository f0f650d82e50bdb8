"""The bare Flask anchors: the least a Python view can do to deliver a stored file.

They take a job id straight from the path (no token, no validation, no record, no audit),
so the difference between them and the full endpoint is what the service adds. Run under
config/gunicorn.conf.py like the service: ``bench.anchors:create_app()``.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response, send_file

STORE_ROOT_VARIABLE = "BENCH_STORE_ROOT"
SEND_FILE_PATH = "/ec-reporting-svc/bare/send-file/"
X_ACCEL_PATH = "/ec-reporting-svc/bare/x-accel/"
# The same internal nginx location the service redirects to for a whole file.
X_ACCEL_FULL = "/_reporting_svc_files/full/"


def create_app() -> Flask:
    """A Flask app with the two bare views over the local store named by the environment."""
    app = Flask(__name__)
    root = Path(os.environ[STORE_ROOT_VARIABLE])

    @app.get(SEND_FILE_PATH + "<job>")
    def bare_send_file(job: str) -> Response:
        """Only ``send_file``: the file wrapper (sendfile under gunicorn) and its headers."""
        return send_file(root / "jobs" / job / "content", as_attachment=True)

    @app.get(X_ACCEL_PATH + "<job>")
    def bare_x_accel(job: str) -> Response:
        """Only an ``X-Accel-Redirect`` answer: nginx sends the bytes."""
        response = Response(status=200, content_type="application/octet-stream")
        response.headers["X-Accel-Redirect"] = f"{X_ACCEL_FULL}jobs/{job}/content"
        return response

    return app
