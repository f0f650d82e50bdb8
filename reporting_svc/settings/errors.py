"""Why settings stop a command: the errors, each reported at start-up in one line."""

from __future__ import annotations

from .model import PREFIX


class SettingsError(Exception):
    """A missing or contradictory setting, reported at start-up in one line."""


class NoDeployment(SettingsError):
    """The home found holds no deployment, and the command was not asked to start one."""


# Why a deployment without a key does not start: only the embedded default makes a secret.
NO_KEY = (
    f"no signing key is configured: set {PREFIX}JWT_JWKS_FILE (or {PREFIX}JWT_PUBLIC_KEY_FILE"
    f" or {PREFIX}JWT_SECRET); only the embedded default (local store, SQLite catalog, no"
    " settings file) makes itself a development secret"
)
