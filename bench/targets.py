"""What is measured: the service's scenarios and the anchors each is compared with.

A target knows how to address one report (its URL, whether it needs the token, whether the
client follows a redirect) and which server processes to probe. The order of ``TARGETS``
alternates scenarios and anchors; each round rotates it, so no target always runs first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .anchors import SEND_FILE_PATH, X_ACCEL_PATH
from .reports import Report

DOWNLOAD = "/ec-reporting-svc/rest/v2.0/reports/download?id="
STREAM, X_ACCEL, PROXY, REDIRECT = "stream", "x-accel", "S3 proxy", "S3 redirect"
S3_X_ACCEL = "S3 x-accel"
BARE_SEND_FILE, BARE_X_ACCEL = "bare send_file", "bare X-Accel"
STATIC, S3_DIRECT = "nginx static", "S3 direct"
ORDER = [
    STREAM,
    BARE_SEND_FILE,
    X_ACCEL,
    BARE_X_ACCEL,
    STATIC,
    PROXY,
    S3_DIRECT,
    REDIRECT,
    S3_X_ACCEL,
]
# Measured for time to the first byte too: every S3 mode and their anchor.
S3_TARGETS = [PROXY, S3_DIRECT, REDIRECT, S3_X_ACCEL]
# Each scenario's anchor: the least code doing the same delivery on the same servers.
ANCHOR_OF = {
    STREAM: BARE_SEND_FILE,
    X_ACCEL: BARE_X_ACCEL,
    PROXY: S3_DIRECT,
    REDIRECT: S3_DIRECT,
    S3_X_ACCEL: S3_DIRECT,
}
SCENARIOS = frozenset(ANCHOR_OF)


@dataclass(frozen=True)
class Target:
    """One scenario or anchor, bound to the running servers."""

    name: str
    url: Callable[[Report], str]
    token: bool = False
    follow: bool = False
    gunicorn_pid: int | None = None
    nginx_pid: int | None = None

    @property
    def is_scenario(self) -> bool:
        """A scenario is the full endpoint; anything else is an anchor."""
        return self.name in SCENARIOS


@dataclass(frozen=True)
class Endpoints:
    """The base URLs and master pids of the running servers."""

    stream: str
    stream_pid: int
    x_accel: str
    x_accel_pid: int
    x_accel_nginx_pid: int
    proxy: str
    proxy_pid: int
    redirect: str
    redirect_pid: int
    s3_x_accel: str
    s3_x_accel_pid: int
    s3_x_accel_nginx_pid: int
    anchors: str
    anchors_pid: int
    anchors_nginx: str
    anchors_nginx_pid: int
    static: str
    presigned: Callable[[Report], str]


def build_targets(at: Endpoints) -> dict[str, Target]:
    """Every target by name, addressing the servers in ``at``."""
    download = DOWNLOAD

    def path_of(base: str, prefix: str) -> Callable[[Report], str]:
        return lambda report: f"{base}{prefix}{report.job_id}"

    targets = [
        Target(STREAM, path_of(at.stream, download), token=True, gunicorn_pid=at.stream_pid),
        Target(
            X_ACCEL,
            path_of(at.x_accel, download),
            token=True,
            gunicorn_pid=at.x_accel_pid,
            nginx_pid=at.x_accel_nginx_pid,
        ),
        Target(PROXY, path_of(at.proxy, download), token=True, gunicorn_pid=at.proxy_pid),
        Target(
            REDIRECT,
            path_of(at.redirect, download),
            token=True,
            follow=True,
            gunicorn_pid=at.redirect_pid,
        ),
        Target(
            S3_X_ACCEL,
            path_of(at.s3_x_accel, download),
            token=True,
            gunicorn_pid=at.s3_x_accel_pid,
            nginx_pid=at.s3_x_accel_nginx_pid,
        ),
        Target(BARE_SEND_FILE, path_of(at.anchors, SEND_FILE_PATH), gunicorn_pid=at.anchors_pid),
        Target(
            BARE_X_ACCEL,
            path_of(at.anchors_nginx, X_ACCEL_PATH),
            gunicorn_pid=at.anchors_pid,
            nginx_pid=at.anchors_nginx_pid,
        ),
        Target(
            STATIC,
            lambda report: f"{at.static}/static/{report.job_id}/content",
            nginx_pid=at.x_accel_nginx_pid,
        ),
        Target(S3_DIRECT, at.presigned),
    ]
    return {target.name: target for target in targets}


def rotated(names: list[str], round_index: int) -> list[str]:
    """``names`` rotated by the round, so the interleaving differs between rounds."""
    shift = round_index % len(names) if names else 0
    return names[shift:] + names[:shift]
