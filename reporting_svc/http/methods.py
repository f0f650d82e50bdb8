"""HTTP's registered methods (RFC 9110 §9): the download refuses each one it does not
answer, on record, and metrics label any method outside them as ``other``."""

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
