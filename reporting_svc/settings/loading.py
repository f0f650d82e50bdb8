"""Where settings come from: the environment, an optional TOML file, and the deployment's home.

The environment wins over the file and ``overrides`` (used by tests) over both; every name
is checked against the settings' own, so a misspelt one is refused rather than ignored.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from difflib import get_close_matches
from pathlib import Path

from ..devsecret import dev_secret
from .checks import check
from .errors import NoDeployment, SettingsError
from .model import PREFIX, SETTABLE, Settings
from .processes import worker_threads

# A deployment's home when none is set, under the user's data directory (XDG Base
# Directory): the same for every command, wherever it runs.
HOME_NAME = "reporting-svc"
# Settings that name where a deployment lives; with none of them (and no settings file) its
# files are all found through its home, and a home holding none is no deployment yet.
_LOCATION_KEYS = (
    "store",
    "local_root",
    "s3_bucket",
    "var_dir",
    "catalog_url",
    "audit_url",
    "audit_file",
)
_STORE_KEYS = ("store", "local_root", "s3_bucket")
# Variables with the prefix that are no setting: the settings file's name, and the token
# ``fetch`` reads (fetch/credentials.py), which a user may have set in the same shell.
OTHER_VARIABLES = ("config", "token")


def default_home(environ: Mapping[str, str]) -> Path:
    """A deployment's home when ``REPORTING_SVC_HOME`` is not set: ``$XDG_DATA_HOME``
    (else ``~/.local/share``) ``/reporting-svc``, which no working directory changes."""
    data = Path(environ.get("XDG_DATA_HOME") or "")
    if not data.is_absolute():
        data = Path(environ.get("HOME") or Path.home()) / ".local" / "share"
    return data / HOME_NAME


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    init: bool = False,
    read_only: bool = False,
) -> Settings:
    """Read settings from a TOML file named by ``REPORTING_SVC_CONFIG``, then the environment.

    The environment wins over the file and ``overrides`` (used by tests) over both. A
    ``REPORTING_SVC_*`` variable that names no setting is refused, as an unknown key of the
    file is. ``read_only`` (``check``) makes nothing, not even the development secret.
    Relative paths of the deployment's own files are taken inside its home. When nothing
    names where the deployment lives and its home holds none, this refuses
    (``NoDeployment``) unless ``init`` asks to start a new one there (or ``read_only``
    makes nothing anyway).
    """
    environ = os.environ if environ is None else environ
    _check_variables(environ)
    from .schema import convert  # marshmallow: the server extra's, not the fetch client's

    config_file = environ.get(PREFIX + "CONFIG", "")
    raw = _raw(environ, config_file, overrides or {})
    embedded = not config_file and not any(key in raw for key in _STORE_KEYS)
    threads = worker_threads(environ)
    settings = _at_home(Settings(**convert(raw), worker_threads=threads))
    implicit = not config_file and not any(key in raw for key in _LOCATION_KEYS)
    if implicit and not (init or read_only) and not settings.var_dir.is_dir():
        raise NoDeployment(
            f"no deployment in {settings.home}; set {PREFIX}HOME to an existing deployment's"
            " home, or start a new, empty one there with serve --init or publish --init"
            " (docs/settings.md)"
        )
    check(settings)
    return _with_key(settings, embedded, read_only=read_only)


def _raw(
    environ: Mapping[str, str], config_file: str, overrides: Mapping[str, object]
) -> dict[str, object]:
    """The values as given, by setting name: the file's, the environment's over them (an
    empty variable counts as unset), the overrides' over both, and the default home."""
    raw = _read_file(Path(config_file)) if config_file else {}
    raw.update(
        {
            name: environ[PREFIX + name.upper()]
            for name in SETTABLE
            if environ.get(PREFIX + name.upper())
        }
    )
    raw.update(overrides)
    raw.setdefault("home", default_home(environ))
    return raw


def _at_home(settings: Settings) -> Settings:
    """The deployment's own files: a relative path is taken inside its home, never the
    working directory, so every command finds the same files wherever it runs."""
    home = settings.home.absolute()
    return replace(
        settings,
        home=home,
        local_root=home / settings.local_root,
        var_dir=home / settings.var_dir,
        audit_file=str(home / settings.audit_file) if settings.audit_file else "",
    )


def _known() -> list[str]:
    """The settings' names in lower case: the file's keys, the environment's without PREFIX."""
    return list(SETTABLE)


def _unknown(names: set[str], known: list[str], spelt: Callable[[str], str] = str) -> str:
    """The unknown names, each with the known one it most resembles, if any, as ``spelt``."""
    return ", ".join(
        spelt(name)
        + "".join(f" (did you mean {spelt(match)}?)" for match in get_close_matches(name, known, 1))
        for name in sorted(names)
    )


def _check_variables(environ: Mapping[str, str]) -> None:
    """A misspelt variable would leave its setting at the default without a word."""
    known = [name.upper() for name in [*_known(), *OTHER_VARIABLES]]
    unknown = {name[len(PREFIX) :] for name in environ if name.startswith(PREFIX)} - set(known)
    if unknown:
        spelt = _unknown(unknown, known, lambda name: PREFIX + name)
        raise SettingsError(f"unknown setting(s) in the environment: {spelt}")


def _read_file(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"cannot read settings file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {path} is not valid TOML: {error}") from None
    unknown = set(data) - set(_known())
    if unknown:
        raise SettingsError(f"unknown setting(s) in {path}: {_unknown(unknown, _known())}")
    return data


def _with_key(settings: Settings, embedded: bool, *, read_only: bool) -> Settings:
    """The checked settings with their signing key: as configured, else the development
    secret when they may run on one (made here unless ``read_only``)."""
    generated = not settings.has_key and _development(settings, embedded)
    secret = dev_secret(settings.var_dir, make=not read_only) if generated else settings.jwt_secret
    return replace(settings, jwt_secret=secret, dev_secret=generated, embedded_default=embedded)


def _development(settings: Settings, embedded: bool) -> bool:
    """Whether the settings are the embedded default on the embedded engines alone (local
    store, SQLite catalog, no audit database): the one deployment that may run on a
    generated development secret. Any other must configure a key (NO_KEY)."""
    sqlite = settings.catalog_database_url.startswith("sqlite:")
    return embedded and sqlite and "postgres" not in settings.audit_sink
