"""The audit trail: a combination of sinks that can hold, and a database when one is named."""

from __future__ import annotations

from ..errors import SettingsError
from ..model import AUDIT_SCHEME, PREFIX, Settings

AUDIT_SINKS = ("file", "stdout", "postgres")


def check_audit(settings: Settings) -> None:
    """Known sinks, not the file and PostgreSQL both, and a PostgreSQL URL for ``postgres``."""
    sinks = set(settings.audit_sink)
    if sinks - set(AUDIT_SINKS) or not sinks or {"file", "postgres"} <= sinks:
        raise SettingsError(
            f"{PREFIX}AUDIT_SINK must be file, postgres or stdout, or one of the first two "
            f"with stdout, not {','.join(settings.audit_sink)}"
        )
    if "postgres" in sinks and not settings.audit_database_url:
        raise SettingsError(f"{PREFIX}AUDIT_SINK is postgres but {PREFIX}AUDIT_URL is not set")
    scheme = settings.audit_url.partition("://")[0]
    if settings.audit_url and scheme != AUDIT_SCHEME:
        raise SettingsError(f"{PREFIX}AUDIT_URL must start with {AUDIT_SCHEME}://, not {scheme!r}")
