"""The WSGI entry point for any server: ``gunicorn wsgi:app``."""

from reporting_svc import create_app

app = create_app()
