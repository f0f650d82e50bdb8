"""The header names the service reads and sends, and the request id's pattern: one home
each, imported by the code that uses them and by the OpenAPI document that states them."""

REQUEST_ID = "X-Request-ID"
# A caller's request id is echoed only when it matches this (else a new one is made).
REQUEST_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"

RANGE = "Range"
IF_RANGE = "If-Range"
IF_MATCH = "If-Match"
IF_UNMODIFIED_SINCE = "If-Unmodified-Since"
IF_NONE_MATCH = "If-None-Match"
IF_MODIFIED_SINCE = "If-Modified-Since"
# If-Match and If-Unmodified-Since: nginx evaluates them again on an x-accel answer,
# against its own file metadata, and no setting turns that off.
PRECONDITION_HEADERS = (IF_MATCH, IF_UNMODIFIED_SINCE)
# The validators a cache sends to revalidate its copy (304).
CACHE_VALIDATORS = (IF_NONE_MATCH, IF_MODIFIED_SINCE)
VALIDATOR_HEADERS = (*CACHE_VALIDATORS, IF_RANGE, *PRECONDITION_HEADERS)

CONTENT_DISPOSITION = "Content-Disposition"
CONTENT_RANGE = "Content-Range"
ETAG = "ETag"
LOCATION = "Location"
REPR_DIGEST = "Repr-Digest"
RETRY_AFTER = "Retry-After"
WWW_AUTHENTICATE = "WWW-Authenticate"
# What describes a job's file on every 200 and 206 (http/representation.py sends them).
FILE_HEADERS = (CONTENT_DISPOSITION, ETAG, REPR_DIGEST)
