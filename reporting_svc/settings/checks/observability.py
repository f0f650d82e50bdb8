"""What the service tells its operators: the metrics token and the log level."""

from __future__ import annotations

import re

from ..errors import SettingsError
from ..model import PREFIX, Settings

# RFC 6750 §2.1 b64token: what a client can send after "Bearer " and be read back whole.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def check_observability(settings: Settings) -> None:
    """A metrics token a scraper can send whole, and a log level the logs know."""
    if settings.metrics_token and not _BEARER_TOKEN.fullmatch(settings.metrics_token):
        raise SettingsError(
            f"{PREFIX}METRICS_TOKEN must be a bearer token: letters, digits and -._~+/ then ="
        )
    if settings.log_level.upper() not in LOG_LEVELS:
        raise SettingsError(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
