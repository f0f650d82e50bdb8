"""What to do about the S3 failures a deployment meets first: one line each, naming the
setting or variable to fix (docs/stores.md, "When S3 refuses")."""

from __future__ import annotations

_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE),"
    " or run on a host with an IAM role"
)
_ENDPOINT = (
    "cannot connect to S3: check REPORTING_SVC_S3_ENDPOINT_URL (unset for AWS) and that the"
    " server runs"
)
_REFUSED = (
    "S3 refused these credentials: they need s3:ListBucket and s3:GetObject on the bucket,"
    " and s3:PutObject, s3:PutObjectTagging and s3:DeleteObject to publish and purge"
    " (docs/stores.md)"
)
_REGION = "the bucket is in another region: set REPORTING_SVC_S3_REGION to it"
_CHANGED = (
    "S3 refused the file: its SHA-256 is not the one measured when publishing began"
    " (did the file change meanwhile?)"
)

# Keyed by S3's error code, the bare status of a HEAD (which has no body), or botocore's
# exception name.
HINTS = {
    "NoCredentialsError": _CREDENTIALS,
    "PartialCredentialsError": _CREDENTIALS,
    "NoSuchBucket": (
        "the bucket REPORTING_SVC_S3_BUCKET names does not exist at this endpoint: create it,"
        " or correct REPORTING_SVC_S3_BUCKET or REPORTING_SVC_S3_ENDPOINT_URL"
    ),
    "InvalidAccessKeyId": "S3 does not know this access key: check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "S3 refused the secret key: check AWS_SECRET_ACCESS_KEY",
    "AccessDenied": _REFUSED,
    "403": _REFUSED,
    "PermanentRedirect": _REGION,
    "301": _REGION,
    "EndpointConnectionError": _ENDPOINT,
    "ConnectTimeoutError": _ENDPOINT,
    "SSLError": (
        "TLS to the S3 endpoint failed: check REPORTING_SVC_S3_CA_BUNDLE (a private CA's file)"
    ),
    "BadDigest": _CHANGED,
    "XAmzContentChecksumMismatch": _CHANGED,
}


def hint(what: str, cause: str) -> str:
    """``what`` failed, followed by what to do when ``cause`` (an S3 error code or a
    botocore exception's name) is one a deployment can fix."""
    advice = HINTS.get(cause)
    return f"{what}: {advice}" if advice else what
