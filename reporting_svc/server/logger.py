"""gunicorn's error and access logs as the app's JSON lines, with no refused request's text."""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn import glogging

from ..http.headers import REQUEST_ID
from ..logs import ACCESS_FIELDS, JsonFormatter
from .refused import withheld


class WithheldRequestText(logging.Filter):
    """gunicorn's parse errors given to a log line (``"Ignored premature client
    disconnection. %s"``) show their kind, not the header line they quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                withheld(arg) if isinstance(arg, BaseException) else arg for arg in record.args
            )
        return True


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's error and access logs in the same JSON lines as the app's.

    A refused request's text never reaches them (reporting_svc.server.refused: the worker
    withholds it from its warning, the filter from any other line); the formatter still
    redacts tokens in whatever else is logged.
    """

    def setup(self, cfg: Any) -> None:
        """JSON everywhere; ``-`` means standard error for the access log too, since
        standard output carries the audit records and the start-up curl line."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
                handler.addFilter(WithheldRequestText())
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                    handler.setStream(sys.stderr)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """The request's one log line: the server's view and the app's (caller, route, and
        the status sent: nginx turns an x-accel 200 into the 206 the app decided).

        A request gunicorn refused before the app saw it has no route or subject.
        """
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in resp.headers}
        app = environ.get(ACCESS_FIELDS, {})
        self.access_log.info(
            "access",
            extra={
                "requestId": headers.get(REQUEST_ID.lower()),
                "subject": app.get("subject"),
                "route": app.get("route"),
                "path": environ.get("PATH_INFO"),
                "method": environ.get("REQUEST_METHOD"),
                "status": app.get("status", resp.status_code),
                "duration": round(request_time.total_seconds(), 6),
                "clientAddress": environ.get("REMOTE_ADDR"),
            },
        )
