"""gunicorn settings for reporting-svc, tuned for long report downloads.

gthread workers keep a heartbeat on the main thread, so ``timeout`` never kills a healthy
download that streams for minutes; it only catches a worker that is truly stuck.
Override any value with ``GUNICORN_CMD_ARGS`` (for example ``--workers 4 --threads 16``).
"""

import multiprocessing
import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = 8
timeout = 60
graceful_timeout = 120
keepalive = 5

# A request line or header longer than this is refused by gunicorn itself (400/414).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# nginx on the same host is the only proxy trusted for X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

accesslog = "-"
errorlog = "-"
