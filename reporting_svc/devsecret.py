"""The development signing secret used when no key is configured, shared by every process."""

import os
import secrets
import tempfile
from pathlib import Path

from .file_modes import make_dirs

FILE_NAME = "dev-jwt-secret"


def dev_secret(var_dir: Path, *, make: bool = True) -> str:
    """Return the secret kept under ``var_dir``, creating it once unless ``make`` is off
    (then empty while there is none: ``check`` changes nothing).

    Created with a hard link from a private temporary file so that concurrent gunicorn
    workers racing on first start all end up with the same secret.
    """
    path = var_dir / FILE_NAME
    if not path.exists():
        if not make:
            return ""
        make_dirs(var_dir)
        fd, temp = tempfile.mkstemp(dir=var_dir, prefix=".secret-")  # SECRET_MODE: 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    return path.read_text().strip()
