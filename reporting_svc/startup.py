"""What ``serve`` says at start-up: a taken address in one line, and the sample's curl
lines only once the service listens, naming the address it listens on.

gunicorn's master calls these from its hooks (config/gunicorn.conf.py), after every source
of its settings (the config file, ``GUNICORN_CMD_ARGS``, its command line) has been
merged, so the address checked and announced is the one gunicorn binds.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from gunicorn import systemd
from gunicorn.util import is_ipv6

from .api import paths
from .auth.grants import parse_grant
from .auth.tokens import mint_token
from .lifecycle.sample import SAMPLE_JOB_ID
from .settings import Settings, SettingsError, load_settings
from .storage import JobRecord, make_store

_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - naming the wildcard, not binding it
_SAMPLE_TOKEN_TTL = 24 * 3600


def refuse_taken_address(server: Any) -> None:
    """Stop gunicorn in one line when another process listens on an address it would
    bind, rather than after five retries and a line for each.

    Skipped when gunicorn inherits its sockets (a re-exec on USR2, systemd's socket
    activation): the process handing them over holds the address, rightly.
    """
    if server.master_pid or server.LISTENERS or systemd.listen_fds(unset_environment=False):
        return
    for address in server.cfg.address:
        if not isinstance(address, tuple):  # a Unix socket or an inherited fd
            continue
        host, port = address
        family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if server.cfg.reuse_port and hasattr(socket, "SO_REUSEPORT"):
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                print(
                    f"reporting-svc: error: cannot listen on {_host_port(host, port)}:"
                    f" {error.strerror}; stop what holds it, or choose another address"
                    " (serve --bind HOST:PORT, make run BIND=HOST:PORT)",
                    file=sys.stderr,
                    flush=True,
                )
                if server.pidfile is not None:
                    server.pidfile.unlink()
                raise SystemExit(1) from None


def announce_ready(server: Any) -> None:
    """gunicorn is listening: print the curl lines for the address it listens on."""
    try:
        settings = load_settings()
    except SettingsError:
        return  # each worker stops on it, in one line; run directly, gunicorn checked nothing
    announce(settings, listening_address(server))


def listening_address(server: Any) -> tuple[str, int] | None:
    """The host and port of gunicorn's first TCP listener, as bound (a port 0 resolved)."""
    for listener in server.LISTENERS:
        if listener.sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = listener.sock.getsockname()[:2]
            return str(host), int(port)
    return None


def announce(settings: Settings, address: tuple[str, int] | None) -> None:
    """Print the sample's two curl lines for the address the service listens on: on the
    embedded default only, once its sample is published."""
    if address is None or not settings.embedded_default:
        return
    record = make_store(settings).get_record(SAMPLE_JOB_ID)
    if record is not None:
        print(curl_lines(settings, record, base_url(*address)), flush=True)


def curl_lines(settings: Settings, record: JobRecord, base_url: str) -> str:
    """Two ready commands, with a day-long token for the sample's study: the first
    downloads the sample (following the redirect to S3 in redirect mode), the second lists
    the study's reports.

    With public keys only the service cannot sign, so the lines say where the token goes.
    """
    grant = parse_grant(f"{record.studyId}:{record.mode}:{record.requiredPermission}")
    token = (
        mint_token(settings, "newcomer", [grant], ttl=_SAMPLE_TOKEN_TTL)
        if settings.jwt_secret
        else "$TOKEN"
    )
    auth = f"-H 'Authorization: Bearer {token}'"
    download = f"{base_url}{paths.DOWNLOAD}?id={record.id}"
    listing = f"{base_url}{paths.DOWNLOAD_LIST}?studyId={record.studyId}&limit=20&offset=0"
    # In redirect mode the download is a 302 to S3; curl drops the token on the way there.
    follow = " -L" if settings.delivery == "redirect" else ""
    return (
        f"curl -fsS{follow} -o {record.fileName} {auth} '{download}'\ncurl -fsS {auth} '{listing}'"
    )


def base_url(host: str, port: int) -> str:
    """The URL a client on this host reaches a listener at: loopback for a wildcard."""
    return f"http://{_host_port('127.0.0.1' if host in _WILDCARDS else host, port)}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if is_ipv6(host) else f"{host}:{port}"
