"""reporting-svc under gunicorn: its settings, worker class, logger class and refusal text.

Named ``server`` for what it integrates (the HTTP server, installed by the ``server``
extra), not ``gunicorn``: a package of that name would read as the gunicorn distribution
in every import line and traceback. Like the top-level package, it imports nothing here:
loading ``conf`` must not import prometheus_client before the metrics directory is set.
"""
