"""HTTP's registered methods (RFC 9110 §9): the download refuses each one it does not
answer, on record, and metrics label any method outside them as ``other``."""

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
# Every metrics label value must come from a small fixed set: each new value is a new series
# in every worker's files and in /metrics. The method is the one a caller picks freely.
OTHER_METHOD = "other"


def method_label(method: str) -> str:
    """The request's method as a metrics label: one of the HTTP methods, else ``other``."""
    return method if method in METHODS else OTHER_METHOD
