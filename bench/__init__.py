"""Benchmark of reporting-svc against nginx, bare Flask and direct S3 (``make bench``)."""
