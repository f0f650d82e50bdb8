"""The settings themselves: one typed, frozen field per ``REPORTING_SVC_*`` variable."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..storage.registry import STORES

PREFIX = "REPORTING_SVC_"
AUDIT_SCHEME = "postgresql+psycopg"
CATALOG_FILE = "catalog.sqlite3"
# A purge's claim on a job with no record yet is its claimant's for this long, then the
# claimant is presumed dead and another run records and finishes the job. A claimant
# spends between its claim and its record one audit write: a wait for the file's lock
# (held by each writer for one batch's write) and an fsync, or in PostgreSQL at most
# the chain's lock_timeout plus a connection and a commit; minutes at worst, on a sick
# disk or network. Nothing bounds a claimant paused longer (a frozen VM, SIGSTOP).
DEFAULT_PURGE_LEASE_SECONDS = 15 * 60
# Threads of a gunicorn worker that never send a download: however many are in flight,
# these answer /healthz, /readyz, /metrics and the 503s of downloads past the limit.
RESERVED_THREADS = 2
# One caller's default share of a host's download slots: a quarter.
SUBJECT_SHARE = 4
# The file of lock bytes that counts a host's download slots (http/slots.py), in var_dir.
SLOTS_FILE = "download-slots"


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
        return str(getattr(self, STORES[self.store].delivery_setting))

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


# Fields the service derives itself; no variable or key sets them.
DERIVED = frozenset({"embedded_default", "dev_secret", "worker_threads"})
#: Every other field, by name, with its type as written (settings/schema.py converts to it).
SETTABLE = {spec.name: str(spec.type) for spec in fields(Settings) if spec.name not in DERIVED}
