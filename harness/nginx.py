"""nginx with the project's config/nginx.conf, run in the foreground in a folder.

The site is the shipped one with its deployment values (listen address, upstream, store
root, log directory; for an S3 server over https, its resolver and CA file) replaced, so
what the tests and the benchmark put in front of gunicorn is what a deployment copies; a
value that is no longer in the file stops the run.
"""

from __future__ import annotations

import getpass
import resource
import shutil
from pathlib import Path
from typing import NamedTuple

CONFIG = Path(__file__).resolve().parents[1] / "config"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# nginx counts excess per millisecond: whatever the rate, more than ``burst`` requests in
# one millisecond get 429, which 64 connections reach. Lifting the rate lifts the burst.
UNLIMITED_RATE = "1000000r/s"
UNLIMITED_BURST = "1000000"
# The per-client request rate as config/nginx.conf ships it.
SHIPPED_RATE = "10r/s"
# The most requests in progress per client address nginx accepts as a limit: none.
UNLIMITED_PER_ADDRESS = 65535
PER_ADDRESS = "limit_conn reporting_per_address "
# The CAs the S3 relay trusts as shipped: the system's, which sign AWS's certificates.
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


class S3Tls(NamedTuple):
    """Where the S3 relay resolves S3's host name (``host:port``) and the CA file it trusts."""

    resolver: str
    trusted_certificate: Path


def site(
    port: int,
    upstream: str | list[str],
    store_root: Path,
    log_dir: Path,
    *,
    rate: str | None = None,
    s3_tls: S3Tls | None = None,
) -> str:
    """config/nginx.conf for this run: ``rate`` None lifts the per-client limits (the
    request rate and the requests in progress per address, else both as shipped); several
    upstreams are balanced, as docs/deploying.md's "Several hosts" shows; ``s3_tls`` points the S3
    relay at a private DNS server and CA (else the shipped resolver and system CAs stay)."""
    text = (CONFIG / "nginx.conf").read_text()
    hosts = [upstream] if isinstance(upstream, str) else upstream
    servers = "\n    ".join(f"server {host.removeprefix('http://')};" for host in hosts)
    values = [
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8000;", servers),
        ("/srv/reporting-svc/reports/", f"{store_root.absolute()}/"),
        (f"rate={SHIPPED_RATE}", f"rate={rate or UNLIMITED_RATE}"),
        ("burst=20 ", f"burst={20 if rate else UNLIMITED_BURST} "),
        (
            f"{PER_ADDRESS}{per_address()};",
            f"{PER_ADDRESS}{per_address() if rate else UNLIMITED_PER_ADDRESS};",
        ),
        ("/var/log/nginx/", f"{log_dir.absolute()}/"),
    ]
    if s3_tls is not None:
        values += [
            ("resolver 127.0.0.53 ", f"resolver {s3_tls.resolver} "),
            (SYSTEM_CAS, str(s3_tls.trusted_certificate.absolute())),
        ]
    for default, value in values:
        if default not in text:
            raise RuntimeError(f"config/nginx.conf no longer contains {default!r}")
        text = text.replace(default, value)
    return text


def per_address() -> int:
    """The requests in progress one client address may have, as config/nginx.conf ships."""
    text = (CONFIG / "nginx.conf").read_text()
    start = text.index(PER_ADDRESS) + len(PER_ADDRESS)
    return int(text[start : text.index(";", start)])


def main_config(
    folder: Path,
    http_block: str,
    *,
    workers: str = "1",
    connections: int = 1024,
    user: str | None = None,
) -> Path:
    """A whole nginx.conf that runs in ``folder`` in the foreground; returns its path.

    Workers run as the current user (``user`` is ignored when that is not root), so they
    can read a store under a private temporary directory; as root, ``user`` ("nobody
    nogroup") runs them as another account, as a deployment's www-data. Each worker may
    open two files per connection (the client's socket and the report it sends), up to
    the hard limit an unprivileged nginx may raise itself to.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = 2 * connections if hard == resource.RLIM_INFINITY else min(2 * connections, hard)
    temp = folder / "temp"
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG / "reporting-svc-file-headers.conf", folder)
    config = folder / "nginx.conf"
    config.write_text(
        f"""daemon off;
user {user or getpass.getuser()};
worker_processes {workers};
worker_rlimit_nofile {files};
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections {connections}; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {folder}/access.log;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{http_block}
}}
"""
    )
    return config


def command(folder: Path, config: Path) -> list[str]:
    """The nginx command line for a config written by ``main_config``."""
    return [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)]
