"""Prometheus metrics, summed across gunicorn workers by the client's multiprocess mode.

gunicorn's settings (``server/conf.py``) point ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before any worker imports this module, so every worker writes its own files
there and ``/metrics`` adds them up. Without it (tests, the development server) one
process counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "reporting_http_requests_total",
    "HTTP requests answered, by route, method (other for any unknown one) and status.",
    ["route", "method", "status"],
)
DOWNLOAD_BYTES = Counter(
    "reporting_download_bytes_total",
    "File bytes sent by the service itself (x-accel and redirect bytes are sent by others).",
    ["delivery"],
)
DOWNLOAD_DURATION = Histogram(
    "reporting_download_duration_seconds",
    "From the request's arrival to the last byte of a download the service sent.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
DOWNLOADS_IN_FLIGHT = Gauge(
    "reporting_downloads_in_flight",
    "Downloads whose body is being sent right now.",
    multiprocess_mode="livesum",
)
DOWNLOADS_REFUSED_BUSY = Counter(
    "reporting_downloads_refused_busy_total",
    "Downloads refused with 503 because every download slot of the host or the worker was taken.",
)
DOWNLOADS_REFUSED_CALLER = Counter(
    "reporting_downloads_refused_caller_total",
    "Downloads refused with 429 because their caller held its share of the host's slots.",
)
STORE_ERRORS = Counter(
    "reporting_store_errors_total",
    "Store failures: unavailable, missing (a record without its file) or mismatch.",
    ["kind"],
)
AUTH_FAILURES = Counter(
    "reporting_auth_failures_total",
    "Refused callers: missing_token, invalid_token or insufficient_scope.",
    ["reason"],
)


def track_download(delivery: str, started: float) -> Callable[[int], None]:
    """Count a download in flight from now; call the result with the bytes sent at its end."""
    DOWNLOADS_IN_FLIGHT.inc()

    def finished(sent: int) -> None:
        DOWNLOADS_IN_FLIGHT.dec()
        DOWNLOAD_BYTES.labels(delivery).inc(sent)
        DOWNLOAD_DURATION.observe(time.perf_counter() - started)

    return finished


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, summed over workers when they share a directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
