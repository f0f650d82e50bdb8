"""The real processes that the tests and the benchmark start, on 127.0.0.1 only.

Not part of the service (the wheel holds ``reporting_svc`` alone): free ports, process
groups, gunicorn's workers as /proc shows them, and nginx run unprivileged in a folder
with the project's own config/nginx.conf.
"""
