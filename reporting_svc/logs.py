"""Logs as one JSON object per line on standard error, for the app and gunicorn alike.

Nothing logged here carries a header, a token or file content: only the fields named
below and the message. Some of those hold caller text (a path, a subject, gunicorn's
quote of a request it could not parse), so every line is ASCII, escaped as JSON escapes
it (no raw U+0085 or U+2028 for a reader to split on), and any token in it is redacted.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from flask import has_request_context
from gunicorn import glogging

from .http.response_headers import request_id
from .refused import withheld
from .text import redact_tokens

FIELDS = (
    "requestId",
    "subject",
    "route",
    "path",
    "method",
    "status",
    "duration",
    "clientAddress",
)
# Where the app leaves, in the WSGI environ, the fields of a request's access line that
# only it knows (reporting_svc.http.observe): one line per request, written by gunicorn.
ACCESS_FIELDS = "reporting_svc.access"


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, the request fields present, and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(
            {
                key: redact_tokens(value) if isinstance(value, str) else value
                for key, value in entry.items()
            },
            ensure_ascii=True,
        )


class RequestIdFilter(logging.Filter):
    """Stamp every record logged during a request with that request's id.

    The id is fixed on first use, not only once a response hook has asked for it: errors
    are logged before any hook runs, and they are the lines that most need the id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "requestId") and has_request_context():
            record.requestId = request_id()
        return True


def configure_logging(level: str) -> None:
    """Send the service's own loggers to standard error as JSON, once per process."""
    logger = logging.getLogger("reporting_svc")
    logger.setLevel(level)
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    logger.propagate = False


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

    A refused request's text never reaches them (reporting_svc.refused: the worker
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
                "requestId": headers.get("x-request-id"),
                "subject": app.get("subject"),
                "route": app.get("route"),
                "path": environ.get("PATH_INFO"),
                "method": environ.get("REQUEST_METHOD"),
                "status": app.get("status", resp.status_code),
                "duration": round(request_time.total_seconds(), 6),
                "clientAddress": environ.get("REMOTE_ADDR"),
            },
        )
