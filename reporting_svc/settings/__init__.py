"""The one place that reads configuration: environment, optional TOML file, typed and checked.

``model`` holds the settings, ``schema`` their types, ``loading`` where they come from,
``checks/`` what must hold at start-up (one module per concern), ``processes`` gunicorn's
share. What the rest of the package uses is named here.
"""

from .checks.catalog import MAX_RETENTION_DAYS
from .errors import NO_KEY, NoDeployment, SettingsError
from .loading import OTHER_VARIABLES, default_home, load_settings
from .model import PREFIX, RESERVED_THREADS, Settings
from .processes import (
    BIND_VARIABLE,
    DEFAULT_BIND,
    DOWNLOADS_PER_WORKER,
    bind_address,
    worker_processes,
    worker_threads,
)

__all__ = [
    "BIND_VARIABLE",
    "DEFAULT_BIND",
    "DOWNLOADS_PER_WORKER",
    "MAX_RETENTION_DAYS",
    "NO_KEY",
    "OTHER_VARIABLES",
    "PREFIX",
    "RESERVED_THREADS",
    "NoDeployment",
    "Settings",
    "SettingsError",
    "bind_address",
    "default_home",
    "load_settings",
    "worker_processes",
    "worker_threads",
]
