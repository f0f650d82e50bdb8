"""The one place that reads configuration: environment, optional TOML file, typed and checked."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from difflib import get_close_matches
from pathlib import Path

from .devsecret import dev_secret
from .networks import parse_networks

PREFIX = "REPORTING_SVC_"
STORES = ("local", "s3")
LOCAL_DELIVERIES = ("stream", "x-accel")
S3_DELIVERIES = ("proxy", "redirect", "x-accel")
AUDIT_SINKS = ("file", "stdout", "postgres")
AUDIT_SCHEME = "postgresql+psycopg"
CATALOG_SCHEMES = ("sqlite", "postgresql+psycopg")
CATALOG_FILE = "catalog.sqlite3"
ALLOWED_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384"}
)
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# A withdrawal must take effect on every host within 10 seconds (docs/api.md §6), so nothing read
# from a store may be remembered that long.
MAX_CACHE_SECONDS = 9
MAX_RETENTION_DAYS = 100 * 366
# A purge's claim on a job with no record yet is its claimant's for this long, then the
# claimant is presumed dead and another run records and finishes the job. A claimant
# spends between its claim and its record one audit write: a wait for the file's lock
# (held by each writer for one batch's write) and an fsync, or in PostgreSQL at most
# the chain's lock_timeout plus a connection and a commit; minutes at worst, on a sick
# disk or network. Nothing bounds a claimant paused longer (a frozen VM, SIGSTOP).
DEFAULT_PURGE_LEASE_SECONDS = 15 * 60
MAX_PURGE_LEASE_SECONDS = 7 * 24 * 3600
# Waits for PostgreSQL (docs/deploying.md: A stuck database) and readiness, in seconds; libpq takes
# no connect timeout under 2 s.
MAX_WAIT_SECONDS = 3600
MIN_CONNECT_SECONDS = 2
# PostgreSQL connections one engine may hold, kept and overflow alike: far past any server's.
MAX_POOL = 1000
# Threads of a gunicorn worker that never send a download: however many are in flight,
# these answer /healthz, /readyz, /metrics and the 503s of downloads past the limit.
RESERVED_THREADS = 2
# Downloads a host sends at once by default, per worker process: what four threads per CPU
# but RESERVED_THREADS gave each worker before the host counted them as one.
DOWNLOADS_PER_WORKER = max(4, (os.cpu_count() or 1) * 4) - RESERVED_THREADS
# One caller's default share of a host's download slots: a quarter.
SUBJECT_SHARE = 4
# The file of lock bytes that counts a host's download slots (http/slots.py), in var_dir.
SLOTS_FILE = "download-slots"
# Where serve listens unless told otherwise, and the variable that tells it
# (config/gunicorn.conf.py reads it; GUNICORN_CMD_ARGS's --bind wins over both).
DEFAULT_BIND = "127.0.0.1:8000"
BIND_VARIABLE = "GUNICORN_BIND"
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
# RFC 6750 §2.1 b64token: what a client can send after "Bearer " and be read back whole.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


# Why a deployment without a key does not start: only the embedded default makes a secret.
NO_KEY = (
    f"no signing key is configured: set {PREFIX}JWT_JWKS_FILE (or {PREFIX}JWT_PUBLIC_KEY_FILE"
    f" or {PREFIX}JWT_SECRET); only the embedded default (local store, SQLite catalog, no"
    " settings file) makes itself a development secret"
)


class SettingsError(Exception):
    """A missing or contradictory setting, reported at start-up in one line."""


class NoDeployment(SettingsError):
    """The home found holds no deployment, and the command was not asked to start one."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the service; each field maps to ``REPORTING_SVC_<NAME>``."""

    home: Path = Path()
    store: str = "local"
    local_root: Path = Path("var/reports")
    local_delivery: str = "stream"
    x_accel_prefix: str = "/_reporting_svc_files/"
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = ""
    s3_endpoint_url: str = ""
    s3_ca_bundle: str = ""
    s3_delivery: str = "proxy"
    s3_chunk_size: int = 1024 * 1024
    presign_expires: int = 60
    # Long enough to outlive a burst's queue between signing and S3 reading the request
    # (docs/stores.md: x-accel on S3); only nginx ever holds the URL.
    x_accel_presign_expires: int = 15
    s3_cache_seconds: int = 3
    max_downloads_per_worker: int = 0
    max_downloads_per_host: int = 0
    max_downloads_per_subject: int = 0
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key_file: str = ""
    jwt_jwks_file: str = ""
    jwt_issuer: str = "reporting-svc"
    jwt_audience: str = "reporting-svc"
    jwt_algorithms: tuple[str, ...] = ()
    jwt_leeway: int = 0
    grants_file: str = ""
    authenticator: str = ""
    authoriser: str = ""
    var_dir: Path = Path("var")
    audit_sink: tuple[str, ...] = ("file",)
    audit_file: str = ""
    audit_fsync: bool = True
    audit_url: str = field(default="", repr=False)
    catalog_url: str = field(default="", repr=False)
    retention_days: int = 0
    purge_lease_seconds: int = DEFAULT_PURGE_LEASE_SECONDS
    database_connect_timeout: int = 3
    database_statement_timeout: int = 5
    database_lock_timeout: int = 3
    database_pool_timeout: int = 3
    database_keepalive: int = 5
    # Per process and database (catalog and audit trail share one engine on one URL): 3
    # hosts x 4 workers (2 CPUs) x 6 = 72 fit PostgreSQL's default 100 (docs/deploying.md).
    database_pool_size: int = 4
    database_pool_overflow: int = 2
    readiness_timeout: int = 2
    trusted_proxies: tuple[str, ...] = ()
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    metrics_token: str = field(default="", repr=False)
    log_level: str = "INFO"
    embedded_default: bool = field(default=False, compare=False)
    dev_secret: bool = field(default=False, compare=False)
    worker_threads: int = field(default=0, compare=False)

    @property
    def has_key(self) -> bool:
        """Whether tokens can be checked: a key configured, or the development secret."""
        return bool(self.jwt_secret or self.jwt_public_key_file or self.jwt_jwks_file)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The JWT algorithms accepted: as configured, else the one the key type implies."""
        if self.jwt_algorithms:
            return self.jwt_algorithms
        if self.jwt_jwks_file:
            return ("RS256", "ES256")
        return ("RS256",) if self.jwt_public_key_file else ("HS256",)

    @property
    def delivery(self) -> str:
        """The delivery mode in use: each store has its own setting, the store chosen picks one."""
        return self.s3_delivery if self.store == "s3" else self.local_delivery

    @property
    def download_limit(self) -> int:
        """Downloads one process sends itself at once (stream, proxy): as configured, else
        every thread of a gunicorn worker but RESERVED_THREADS (at least one)."""
        return self.max_downloads_per_worker or max(1, self.worker_threads - RESERVED_THREADS)

    @property
    def database_users(self) -> int:
        """Threads of a gunicorn worker that may use PostgreSQL at once: all but
        RESERVED_THREADS (at least one), so a stuck database leaves some to answer health
        checks and metrics; 0 (any number) for settings built without a thread count."""
        return max(1, self.worker_threads - RESERVED_THREADS) if self.worker_threads else 0

    @property
    def host_download_limit(self) -> int:
        """Downloads the host's processes send at once, counted together: as configured,
        else what one process may hold, so a host refuses only when it is full, whichever
        worker accepted the connections."""
        return self.max_downloads_per_host or self.download_limit

    @property
    def subject_download_limit(self) -> int:
        """Downloads one caller (token subject) holds on a host at once: as configured, else
        a quarter of the host's (at least one)."""
        return self.max_downloads_per_subject or max(1, self.host_download_limit // SUBJECT_SHARE)

    @property
    def slots_path(self) -> Path:
        """The file whose byte locks count the host's download slots."""
        return self.var_dir / SLOTS_FILE

    @property
    def audit_path(self) -> Path:
        """The audit trail's JSON Lines file: as configured, else under the var dir."""
        return Path(self.audit_file) if self.audit_file else self.var_dir / "audit.jsonl"

    @property
    def audit_database_url(self) -> str:
        """The audit database's SQLAlchemy URL (sink ``postgres``): as configured, else the
        catalog's when that is PostgreSQL, else empty."""
        if self.audit_url:
            return self.audit_url
        return self.catalog_url if self.catalog_url.startswith(AUDIT_SCHEME + "://") else ""

    @property
    def catalog_database_url(self) -> str:
        """The catalog's SQLAlchemy URL: as configured, else an SQLite file under the var dir."""
        if self.catalog_url:
            return self.catalog_url
        return f"sqlite:///{(self.var_dir / CATALOG_FILE).absolute()}"


_STORE_KEYS = ("store", "local_root", "s3_bucket")
_DERIVED = frozenset({"embedded_default", "dev_secret", "worker_threads"})
# Variables with the prefix that are no setting: the settings file's name, and the token
# ``fetch`` reads (fetch/credentials.py), which a user may have set in the same shell.
OTHER_VARIABLES = ("config", "token")


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
    raw: dict[str, object] = {}
    config_file = environ.get(PREFIX + "CONFIG", "")
    if config_file:
        raw.update(_read_file(Path(config_file)))
    for spec in fields(Settings):
        value = environ.get(PREFIX + spec.name.upper())
        if value is not None and value != "":
            raw[spec.name] = value
    raw.update(overrides or {})
    raw.setdefault("home", default_home(environ))
    embedded = not config_file and not any(key in raw for key in _STORE_KEYS)
    threads = worker_threads(environ)
    settings = _at_home(replace(_build(raw), worker_threads=threads))
    implicit = not config_file and not any(key in raw for key in _LOCATION_KEYS)
    if implicit and not (init or read_only) and not settings.var_dir.is_dir():
        raise NoDeployment(
            f"no deployment in {settings.home}; set {PREFIX}HOME to an existing deployment's"
            " home, or start a new, empty one there with serve --init or publish --init"
            " (docs/settings.md)"
        )
    return _check(settings, embedded, read_only=read_only)


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
    return [spec.name for spec in fields(Settings) if spec.name not in _DERIVED]


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


def _build(raw: Mapping[str, object]) -> Settings:
    values: dict[str, object] = {}
    for spec in fields(Settings):
        if spec.name not in raw or spec.name in _DERIVED:
            continue
        values[spec.name] = _convert(spec.name, spec.type, raw[spec.name])
    return Settings(**values)  # type: ignore[arg-type]


def _convert(name: str, kind: object, value: object) -> object:
    env_name = PREFIX + name.upper()
    try:
        if kind == "Path":
            return Path(str(value))
        if kind == "int":
            return int(str(value))
        if kind == "bool":
            return _boolean(value)
        if kind == "tuple[str, ...]":
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
    except ValueError:
        raise SettingsError(f"{env_name} must be a {_KINDS[str(kind)]}, not {value!r}") from None
    return str(value).strip()


_KINDS = {"int": "whole number", "bool": "boolean (true or false)"}


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _check(settings: Settings, embedded: bool, *, read_only: bool = False) -> Settings:
    _check_store(settings)
    _check_keys(settings)
    _check_audit(settings)
    _check_catalog(settings)
    _check_waits(settings)
    generated = not settings.has_key and _development(settings, embedded)
    secret = dev_secret(settings.var_dir, make=not read_only) if generated else settings.jwt_secret
    return replace(settings, jwt_secret=secret, dev_secret=generated, embedded_default=embedded)


def _development(settings: Settings, embedded: bool) -> bool:
    """Whether the settings are the embedded default on the embedded engines alone (local
    store, SQLite catalog, no audit database): the one deployment that may run on a
    generated development secret. Any other must configure a key (NO_KEY)."""
    sqlite = settings.catalog_database_url.startswith("sqlite:")
    return embedded and sqlite and "postgres" not in settings.audit_sink


def _fail(message: str) -> None:
    raise SettingsError(message)


def _check_store(settings: Settings) -> None:
    if settings.store not in STORES:
        _fail(f"{PREFIX}STORE must be one of {', '.join(STORES)}, not {settings.store!r}")
    if settings.local_delivery not in LOCAL_DELIVERIES:
        _fail(f"{PREFIX}LOCAL_DELIVERY must be one of {', '.join(LOCAL_DELIVERIES)}")
    prefix = settings.x_accel_prefix
    if not prefix.startswith("/") or not prefix.strip("/") or ".." in prefix:
        _fail(f"{PREFIX}X_ACCEL_PREFIX must be an absolute nginx location like /_files/")
    if settings.s3_delivery not in S3_DELIVERIES:
        _fail(f"{PREFIX}S3_DELIVERY must be one of {', '.join(S3_DELIVERIES)}")
    if settings.store == "s3" and not settings.s3_bucket:
        _fail(f"{PREFIX}STORE is s3 but {PREFIX}S3_BUCKET is not set")
    if not 1 <= settings.presign_expires <= MAX_PRESIGN_SECONDS:
        _fail(f"{PREFIX}PRESIGN_EXPIRES must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
    if not 1 <= settings.x_accel_presign_expires <= MAX_PRESIGN_SECONDS:
        _fail(
            f"{PREFIX}X_ACCEL_PRESIGN_EXPIRES must be between 1 and {MAX_PRESIGN_SECONDS} seconds"
        )
    if not 0 <= settings.s3_cache_seconds <= MAX_CACHE_SECONDS:
        _fail(f"{PREFIX}S3_CACHE_SECONDS must be between 0 and {MAX_CACHE_SECONDS} seconds")
    if settings.s3_chunk_size < 64 * 1024:
        _fail(f"{PREFIX}S3_CHUNK_SIZE must be at least 65536 bytes")
    _check_download_limit(settings)


def _check_download_limit(settings: Settings) -> None:
    """Downloads past the limit are refused at once only if a thread is free to refuse them."""
    limit = settings.max_downloads_per_worker
    if limit < 0:
        _fail(f"{PREFIX}MAX_DOWNLOADS_PER_WORKER must not be negative (0: derived)")
    if limit >= settings.worker_threads:
        _fail(
            f"{PREFIX}MAX_DOWNLOADS_PER_WORKER must be below the threads of a worker"
            f" (GUNICORN_THREADS, {settings.worker_threads}), so some are left for health"
            " checks and refusals"
        )
    if settings.max_downloads_per_host < 0 or settings.max_downloads_per_subject < 0:
        _fail(f"{PREFIX}MAX_DOWNLOADS_PER_HOST and _PER_SUBJECT must not be negative (0: derived)")
    if settings.host_download_limit > settings.download_limit:
        _fail(
            f"{PREFIX}MAX_DOWNLOADS_PER_HOST ({settings.host_download_limit}) must be at most"
            f" what one worker may send ({settings.download_limit}): a worker may be handed"
            " most of a host's connections; raise GUNICORN_THREADS"
        )
    if settings.subject_download_limit > settings.host_download_limit:
        _fail(
            f"{PREFIX}MAX_DOWNLOADS_PER_SUBJECT must be at most the host's"
            f" ({settings.host_download_limit})"
        )


def _check_keys(settings: Settings) -> None:
    keys = [
        name
        for name, value in [
            ("JWT_SECRET", settings.jwt_secret),
            ("JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
            ("JWT_JWKS_FILE", settings.jwt_jwks_file),
        ]
        if value
    ]
    if len(keys) > 1:
        _fail(f"set only one of {', '.join(PREFIX + name for name in keys)}")
    for name, path in [
        ("JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
        ("JWT_JWKS_FILE", settings.jwt_jwks_file),
        ("GRANTS_FILE", settings.grants_file),
        ("S3_CA_BUNDLE", settings.s3_ca_bundle),
    ]:
        if path and not Path(path).is_file():
            _fail(f"{PREFIX}{name} {path} is not a readable file")
    if settings.jwt_leeway < 0:
        _fail(f"{PREFIX}JWT_LEEWAY must not be negative")
    bad = [alg for alg in settings.algorithms if alg not in ALLOWED_ALGORITHMS]
    if bad:
        _fail(f"{PREFIX}JWT_ALGORITHMS has unsupported algorithm(s): {', '.join(bad)}")
    symmetric = {alg.startswith("HS") for alg in settings.algorithms}
    public = settings.jwt_public_key_file or settings.jwt_jwks_file
    if public and True in symmetric:
        _fail(f"{PREFIX}JWT_ALGORITHMS lists HS* but public keys are configured")
    if settings.jwt_secret and False in symmetric:
        _fail(f"{PREFIX}JWT_ALGORITHMS lists public-key algorithms but only a secret is set")
    _check_secret_length(settings)


def _check_secret_length(settings: Settings) -> None:
    """RFC 7518 §3.2: an HMAC key at least as long as its hash (32 bytes for HS256)."""
    needed = max((HMAC_KEY_BYTES.get(alg, 0) for alg in settings.algorithms), default=0)
    if settings.jwt_secret and len(settings.jwt_secret.encode()) < needed:
        _fail(
            f"{PREFIX}JWT_SECRET must be at least {needed} bytes for"
            f" {', '.join(settings.algorithms)} (for example: openssl rand -base64 {needed})"
        )


def _check_audit(settings: Settings) -> None:
    unknown = sorted(set(settings.audit_sink) - set(AUDIT_SINKS))
    if unknown or not settings.audit_sink or {"file", "postgres"} <= set(settings.audit_sink):
        _fail(
            f"{PREFIX}AUDIT_SINK must be file, postgres or stdout, or one of the first two "
            f"with stdout, not {','.join(settings.audit_sink)}"
        )
    if "postgres" in settings.audit_sink and not settings.audit_database_url:
        _fail(f"{PREFIX}AUDIT_SINK is postgres but {PREFIX}AUDIT_URL is not set")
    scheme = settings.audit_url.partition("://")[0]
    if settings.audit_url and scheme != AUDIT_SCHEME:
        _fail(f"{PREFIX}AUDIT_URL must start with {AUDIT_SCHEME}://, not {scheme!r}")
    for name, networks in [
        ("TRUSTED_PROXIES", settings.trusted_proxies),
        ("METRICS_ALLOW", settings.metrics_allow),
    ]:
        for network in networks:
            try:
                parse_networks([network])
            except ValueError:
                _fail(f"{PREFIX}{name} has {network!r}, which is no address or network")
    if settings.metrics_token and not _BEARER_TOKEN.fullmatch(settings.metrics_token):
        _fail(f"{PREFIX}METRICS_TOKEN must be a bearer token: letters, digits and -._~+/ then =")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        _fail(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")


def _check_catalog(settings: Settings) -> None:
    if not 0 <= settings.retention_days <= MAX_RETENTION_DAYS:
        _fail(
            f"{PREFIX}RETENTION_DAYS must be from 1 to {MAX_RETENTION_DAYS} days, "
            "or 0 (or unset): reports never expire"
        )
    if not 0 <= settings.purge_lease_seconds <= MAX_PURGE_LEASE_SECONDS:
        _fail(f"{PREFIX}PURGE_LEASE_SECONDS must be from 0 to {MAX_PURGE_LEASE_SECONDS}")
    scheme = settings.catalog_url.partition("://")[0]
    if settings.catalog_url and scheme not in CATALOG_SCHEMES:
        _fail(
            f"{PREFIX}CATALOG_URL must start with sqlite:// or postgresql+psycopg://, "
            f"not {scheme!r}"
        )


def _check_waits(settings: Settings) -> None:
    """Every wait for the database is bounded: no setting may lift a bound."""
    for name, least in [
        ("database_connect_timeout", MIN_CONNECT_SECONDS),
        ("database_statement_timeout", 1),
        ("database_lock_timeout", 1),
        ("database_pool_timeout", 1),
        ("database_keepalive", 1),
        ("readiness_timeout", 1),
    ]:
        if not least <= getattr(settings, name) <= MAX_WAIT_SECONDS:
            _fail(f"{PREFIX}{name.upper()} must be from {least} to {MAX_WAIT_SECONDS} seconds")
    if not 1 <= settings.database_pool_size <= MAX_POOL:
        _fail(f"{PREFIX}DATABASE_POOL_SIZE must be from 1 to {MAX_POOL} connections")
    if not 0 <= settings.database_pool_overflow <= MAX_POOL:
        _fail(f"{PREFIX}DATABASE_POOL_OVERFLOW must be from 0 to {MAX_POOL} connections")
    if settings.database_lock_timeout > settings.database_statement_timeout:
        _fail(
            f"{PREFIX}DATABASE_LOCK_TIMEOUT must not exceed {PREFIX}DATABASE_STATEMENT_TIMEOUT,"
            " which cuts any lock wait short"
        )
