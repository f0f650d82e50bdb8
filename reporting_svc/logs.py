"""Logs as one JSON object per line on standard error, for the app and gunicorn alike.

gunicorn's logger class (reporting_svc.server.logger) formats its lines here too. This
module imports nothing of the app's HTTP layer: the request id reaches it as a function
(``configure_logging``), and the access line's fields are named here for both the app
(reporting_svc.http.observe) and gunicorn's logger to import.

Nothing logged here carries a header, a token or file content: only the fields named
below and the message. Some of those hold caller text (a path, a subject, gunicorn's
quote of a request it could not parse), so every line is ASCII, escaped as JSON escapes
it (no raw U+0085 or U+2028 for a reader to split on), and any token in it is redacted.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import has_request_context

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
# only it knows (reporting_svc.http.observe): one line per request, written by gunicorn
# (reporting_svc.server.logger).
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

    def __init__(self, request_id: Callable[[], str]) -> None:
        super().__init__()
        self._request_id = request_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "requestId") and has_request_context():
            record.requestId = self._request_id()
        return True


def configure_logging(level: str, request_id: Callable[[], str]) -> None:
    """Send the service's own loggers to standard error as JSON, once per process; a line
    logged during a request carries ``request_id()``."""
    logger = logging.getLogger("reporting_svc")
    logger.setLevel(level)
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter(request_id))
    logger.addHandler(handler)
    logger.propagate = False
