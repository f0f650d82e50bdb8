"""gunicorn's share of the settings: where serve listens, its workers and their threads.

config/gunicorn.conf.py runs its workers with these, and the download limits are derived
from the same numbers, so the two cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import SettingsError
from .model import RESERVED_THREADS

# Downloads a host sends at once by default, per worker process: what four threads per CPU
# but RESERVED_THREADS gave each worker before the host counted them as one.
DOWNLOADS_PER_WORKER = max(4, (os.cpu_count() or 1) * 4) - RESERVED_THREADS
# Where serve listens unless told otherwise, and the variable that tells it
# (config/gunicorn.conf.py reads it; GUNICORN_CMD_ARGS's --bind wins over both).
DEFAULT_BIND = "127.0.0.1:8000"
BIND_VARIABLE = "GUNICORN_BIND"


def bind_address(environ: Mapping[str, str]) -> str:
    """gunicorn's address: ``GUNICORN_BIND`` (what ``serve --bind`` sets), else
    DEFAULT_BIND; config/gunicorn.conf.py binds it unless ``GUNICORN_CMD_ARGS`` names one."""
    return environ.get(BIND_VARIABLE) or DEFAULT_BIND


def worker_processes(environ: Mapping[str, str]) -> int:
    """gunicorn workers: ``WEB_CONCURRENCY``, else two per CPU (config/gunicorn.conf.py)."""
    return _whole_number(environ, "WEB_CONCURRENCY", (os.cpu_count() or 1) * 2)


def worker_threads(environ: Mapping[str, str]) -> int:
    """Threads per gunicorn worker: ``GUNICORN_THREADS``, else enough for one worker to send
    every download of the host (workers x DOWNLOADS_PER_WORKER) plus RESERVED_THREADS.

    gunicorn's workers accept connections unevenly, so a worker may be handed most of the
    host's downloads; the host counts them together (http/slots.py). config/gunicorn.conf.py
    runs its workers with this, and the download limits are derived from it, so the two
    cannot disagree.
    """
    derived = worker_processes(environ) * DOWNLOADS_PER_WORKER + RESERVED_THREADS
    return _whole_number(environ, "GUNICORN_THREADS", derived)


def _whole_number(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name) or str(default)
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise SettingsError(f"{name} must be at least 1")
    return number
