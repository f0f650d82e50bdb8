"""What tests share besides fixtures: the test deployment's constants and small helpers.

Fixtures live in conftest.py, where pytest finds them; tests import these names from here.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from reporting_svc.auth.grants import parse_grant

DOWNLOAD = "/ec-reporting-svc/rest/v2.0/reports/download"
DOWNLOAD_LIST = "/ec-reporting-svc/rest/v2.0/reportmetadata/downloadList"
SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
STUDY = "CFD8129A430A473C8A02F4BA5DAAD865"
OTHER_STUDY = "0123456789ABCDEF0123456789ABCDEF"
BUCKET = "reports-test"
# The headers an x-accel answer carries for nginx to keep (config/nginx.conf).
SERVICE_HEADERS = (
    "Content-Type",
    "Content-Disposition",
    "ETag",
    "Last-Modified",
    "Repr-Digest",
    "Cache-Control",
    "X-Content-Type-Options",
    "X-Request-ID",
)


VIEW = f"{STUDY}:test:REPORTING_VIEW"
INVALID_TOKEN = 'Bearer error="invalid_token"'


class Clock:
    """A clock that stands where the test puts it: ``clock.at = instant``."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def error_of(response: Any) -> dict[str, Any]:
    """The ``errorData`` of an envelope, after checking the envelope's shape."""
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "error"
    assert body["result"] is None
    data: dict[str, Any] = body["errorData"]
    assert data["errorCode"] == f"REPT_{response.status_code}"
    return data


def public_jwk(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> Any:
    """The public half of an RSA (RS256) or P-256 (ES256) key as a JWK with its ``kid``."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}
    jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for the test settings' issuer and audience; None removes a claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "alice",
        "iss": "reporting-svc",
        "aud": "reporting-svc",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "grants": [parse_grant(VIEW).to_claim()],
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}
