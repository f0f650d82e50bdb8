"""gunicorn settings for reporting-svc, tuned for long report downloads.

They ship in the package, so an installed service has them wherever it runs: ``serve``
hands gunicorn ``--config python:reporting_svc.server.conf``, and
``config/gunicorn.conf.py`` imports them for ``gunicorn -c config/gunicorn.conf.py``.
Loading them must not import prometheus_client before ``PROMETHEUS_MULTIPROC_DIR`` is
set below, which is why the packages' ``__init__`` modules import nothing of the app's.

gthread workers keep a heartbeat on the main thread, so ``timeout`` never kills a healthy
download that streams for minutes; it only catches a worker that is truly stuck.
``GUNICORN_BIND`` (what ``reporting-svc serve --bind`` sets), ``WEB_CONCURRENCY`` and
``GUNICORN_THREADS`` set the address and the worker and thread counts;
``GUNICORN_CMD_ARGS`` overrides anything, these included (for example ``--bind
127.0.0.1:9000 --graceful-timeout 600``).
"""

import atexit
import os
import shutil
import tempfile
from typing import Any

# gthread, answering gunicorn's own refusals (a request line too long...) in the envelope.
worker_class = "reporting_svc.server.worker.EnvelopeThreadWorker"
timeout = 60
# On SIGTERM (a deploy, a scale-in) a worker stops accepting and lets downloads in
# progress run this long before it is killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 120))
# Longer than the upstream keepalive_timeout in config/nginx.conf (4 s): the proxy, not
# gunicorn, closes an idle connection, so no request is sent on one being closed.
keepalive = 5

# A request line or header longer than this is refused by gunicorn itself (400/414).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Only the nginx in front may set X-Forwarded-*; reporting-svc reads them only from
# REPORTING_SVC_TRUSTED_PROXIES too.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# gunicorn 25.1+ opens a control socket for gunicornc at one path per user
# ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl), so a second instance takes over the
# first one's. reporting-svc is managed with signals (HUP to reload, TERM to stop): no
# socket. Older gunicorn ignores the unknown name.
control_socket_disable = True

# Access and error log as JSON lines on standard error, like the app's own log.
logger_class = "reporting_svc.server.logger.GunicornLogger"
accesslog = "-"
errorlog = "-"

# Prometheus multiprocess mode: every worker writes its counters into one directory,
# fresh for each master, and /metrics sums them. Set before any worker imports the app;
# a directory given in the environment must be emptied before each start.
_own_metrics_dir = ""
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _own_metrics_dir = tempfile.mkdtemp(prefix="reporting-svc-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir

# Imported only now: the worker class imports the app's metrics in this process too, and
# they must see the directory above.
from ..settings import bind_address, worker_processes, worker_threads  # noqa: E402

# GUNICORN_BIND (serve --bind), else 127.0.0.1:8000.
bind = [bind_address(os.environ)]
# WEB_CONCURRENCY, else two per CPU.
workers = worker_processes(os.environ)
# Threads wait on disks, S3 and slow clients far more than they compute. In stream and
# proxy modes each download holds one until its last byte. Workers accept connections
# unevenly, so by default each has threads for all of the host's downloads (which the
# app counts host-wide: REPORTING_SVC_MAX_DOWNLOADS_PER_HOST) plus two, from the same
# rule as the app's limits; the threads left answer health checks and refusals at once.
threads = worker_threads(os.environ)


def child_exit(server: Any, worker: Any) -> None:
    """A worker that is gone no longer counts in gauges such as downloads in flight."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_starting(server: Any) -> None:
    """The metrics directory made above goes with the master, however it exits (gunicorn
    skips on_exit when it cannot listen); an address another process holds stops
    start-up in one line."""
    from ..startup import refuse_taken_address

    if _own_metrics_dir:
        atexit.register(_remove_metrics_dir, os.getpid(), _own_metrics_dir)
    refuse_taken_address(server)


def _remove_metrics_dir(master: int, path: str) -> None:
    if os.getpid() == master:  # a worker's exit leaves it to its siblings
        shutil.rmtree(path, ignore_errors=True)


def when_ready(server: Any) -> None:
    """The sample's curl lines, once gunicorn listens, for the address it listens on."""
    from ..startup import announce_ready

    announce_ready(server)
