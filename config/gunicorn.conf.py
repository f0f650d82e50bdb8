"""gunicorn settings for reporting-svc: ``gunicorn -c config/gunicorn.conf.py wsgi:app``.

They live in the package (``reporting_svc/server/conf.py``), so an installed service has
them too; this file, for a checkout, takes every one of them from there.
"""

from reporting_svc.server.conf import *  # noqa: F403 - gunicorn reads the names it knows
