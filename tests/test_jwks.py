"""Tokens verified against a JWKS file: the key picked by ``kid``, rotation, and refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask

from reporting_svc import create_app
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings, SettingsError
from tests.support import DOWNLOAD, INVALID_TOKEN, STUDY, claims, error_of, public_jwk

CONTENT = b"subjectId\nS-0001\n"
JOB = "6A7C29DD011241DFBE1B64399283C860"


def sign(key: Any, kid: str | None, algorithm: str, **changes: Any) -> str:
    headers = None if kid is None else {"kid": kid}
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_keyed_with(secret: bytes, kid: str) -> str:
    """The algorithm-confusion forgery: HS256 with a public key as the HMAC secret."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64url(json.dumps(claims()).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(mac)}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks_app(
    make_settings: Callable[..., Settings],
    write_jwks: Callable[..., Path],
    rsa_key: Any,
    ec_key: Any,
) -> Callable[..., Flask]:
    """``jwks_app(keys=None, **settings)``: an app verifying with a JWKS of ``keys`` by kid."""

    def make(keys: dict[str, Any] | None = None, **overrides: Any) -> Flask:
        path = write_jwks(keys if keys is not None else {"rsa-1": rsa_key, "ec-1": ec_key})
        return create_app(make_settings(jwt_secret="", jwt_jwks_file=str(path), **overrides))

    return make


def fetch(app: Flask, token: str) -> Any:
    """Download JOB (published into the app's store on first use) with ``token``."""
    services = app.extensions["reporting_svc"]
    if services.store.get_record(JOB) is None:
        source = Path(services.settings.var_dir) / "upstream.csv"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(CONTENT)
        publish_report(
            services.store, source, report_name="Extract", mode="test", study_id=STUDY, job_id=JOB
        )
    return app.test_client().get(
        DOWNLOAD, query_string={"id": JOB}, headers={"Authorization": f"Bearer {token}"}
    )


def assert_invalid_token(response: Any, reason: str) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert reason in error_of(response)["details"]


@pytest.mark.parametrize(("kid", "algorithm"), [("rsa-1", "RS256"), ("ec-1", "ES256")])
def test_token_is_verified_with_the_key_its_kid_names(jwks_app, rsa_key, ec_key, kid, algorithm):
    key = {"rsa-1": rsa_key, "ec-1": ec_key}[kid]
    response = fetch(jwks_app(), sign(key, kid, algorithm))
    assert response.status_code == 200
    assert response.data == CONTENT


def test_token_signed_by_another_key_under_a_known_kid_is_refused(jwks_app):
    impostor = ec.generate_private_key(ec.SECP256R1())
    assert_invalid_token(fetch(jwks_app(), sign(impostor, "ec-1", "ES256")), "signature")


def test_rotation_accepts_old_and_new_keys_then_a_reload_drops_the_old(jwks_app, rsa_key, ec_key):
    old_token, new_token = sign(rsa_key, "2024", "RS256"), sign(ec_key, "2025", "ES256")
    during = jwks_app({"2024": rsa_key, "2025": ec_key})
    assert fetch(during, old_token).status_code == 200
    assert fetch(during, new_token).status_code == 200

    after = jwks_app({"2025": ec_key})  # the file rewritten, then a new app: what a reload does

    assert_invalid_token(fetch(after, old_token), "not known")
    assert fetch(after, new_token).status_code == 200
    assert fetch(during, old_token).status_code == 200, "keys are read at start-up only"


@pytest.mark.parametrize(
    ("kid", "reason"),
    [
        pytest.param("retired-2019", "not known", id="unknown-kid"),
        pytest.param(None, "names no key", id="missing-kid"),
        pytest.param("", "not known", id="empty-kid"),
        pytest.param(7, "invalid", id="numeric-kid"),
        pytest.param(["rsa-1"], "invalid", id="list-kid"),
    ],
)
def test_token_without_a_known_kid_is_an_invalid_token(jwks_app, rsa_key, kid, reason):
    if isinstance(kid, str) or kid is None:
        token = sign(rsa_key, kid, "RS256")
    else:  # PyJWT refuses to encode a kid that is no string; build the header by hand
        header = b64url(json.dumps({"alg": "RS256", "kid": kid}).encode())
        token = f"{header}.{b64url(json.dumps(claims()).encode())}.c2ln"
    assert_invalid_token(fetch(jwks_app(), token), reason)


def test_token_claiming_es256_under_an_rs256_kid_is_refused(jwks_app, ec_key):
    assert_invalid_token(fetch(jwks_app(), sign(ec_key, "rsa-1", "ES256")), "algorithm")


def test_token_claiming_rs256_under_an_es256_kid_is_refused(jwks_app, rsa_key):
    assert_invalid_token(fetch(jwks_app(), sign(rsa_key, "ec-1", "RS256")), "algorithm")


@pytest.mark.parametrize("encoding", ["pem", "jwk"])
def test_hs256_keyed_with_the_rs256_public_key_is_refused(jwks_app, rsa_key, encoding):
    public = rsa_key.public_key()
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(public_jwk(rsa_key, "rsa-1")).encode(),
    }[encoding]
    assert_invalid_token(fetch(jwks_app(), hs256_keyed_with(secret, "rsa-1")), "algorithm")


def test_unsigned_token_with_a_known_kid_is_refused(jwks_app):
    header = b64url(json.dumps({"alg": "none", "kid": "rsa-1"}).encode())
    token = f"{header}.{b64url(json.dumps(claims()).encode())}."
    assert_invalid_token(fetch(jwks_app(), token), "algorithm")


def test_token_issued_in_the_future_is_refused(jwks_app, ec_key):
    token = sign(ec_key, "ec-1", "ES256", iat=int(time.time()) + 600, nbf=None)
    assert_invalid_token(fetch(jwks_app(), token), "not yet valid")


def test_token_issued_slightly_in_the_future_passes_within_the_leeway(jwks_app, ec_key):
    token = sign(ec_key, "ec-1", "ES256", iat=int(time.time()) + 20, nbf=None)
    assert fetch(jwks_app(jwt_leeway=60), token).status_code == 200
    assert_invalid_token(fetch(jwks_app(jwt_leeway=0), token), "not yet valid")


@pytest.mark.parametrize(("leeway", "status"), [(30, 200), (0, 401)])
def test_token_expired_20_seconds_ago_depends_on_the_leeway(jwks_app, ec_key, leeway, status):
    token = sign(ec_key, "ec-1", "ES256", exp=int(time.time()) - 20)
    response = fetch(jwks_app(jwt_leeway=leeway), token)
    assert response.status_code == status
    if status == 401:
        assert_invalid_token(response, "expired")


def test_encryption_keys_in_the_set_are_ignored(make_settings, tmp_path, rsa_key, ec_key):
    enc = {**public_jwk(rsa_key, "enc-1"), "use": "enc", "alg": "RSA-OAEP"}
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"keys": [enc, public_jwk(ec_key, "ec-1")]}))
    app = create_app(make_settings(jwt_secret="", jwt_jwks_file=str(path)))
    assert fetch(app, sign(ec_key, "ec-1", "ES256")).status_code == 200
    assert_invalid_token(fetch(app, sign(rsa_key, "enc-1", "RS256")), "not known")


def _rsa_jwk(**changes: Any) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = {**public_jwk(key, "k1"), **changes}
    return {name: value for name, value in jwk.items() if value is not None}


def _private_jwk() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    return {**jwk, "kid": "k1"}


def _rsa_primes_jwk() -> dict[str, Any]:
    """A public RSA key that also carries its primes: PyJWK would load it as public."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    return {**public_jwk(key, "k1"), "p": private["p"], "q": private["q"]}


def _p384_jwk() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP384R1())
    return {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(lambda: "{not json", "JSON", id="not-json"),
        pytest.param(lambda: "[]", "Key Set", id="a-list"),
        pytest.param(lambda: '{"keys": {}}', "Key Set", id="keys-not-a-list"),
        pytest.param(lambda: '{"keys": []}', "no signing key", id="no-keys"),
        pytest.param(lambda: {"keys": ["k1"]}, "object", id="key-not-an-object"),
        pytest.param(lambda: {"keys": [_rsa_jwk(kid=None)]}, "kid", id="no-kid"),
        pytest.param(lambda: {"keys": [_rsa_jwk(), _rsa_jwk()]}, "two keys", id="duplicate-kid"),
        pytest.param(lambda: {"keys": [_rsa_jwk(kty="XYZ")]}, "k1", id="unknown-kty"),
        pytest.param(lambda: {"keys": [_rsa_jwk(n="@@")]}, "k1", id="broken-modulus"),
        pytest.param(lambda: {"keys": [_rsa_jwk(alg="RS512")]}, "RS512", id="alg-not-allowed"),
        pytest.param(lambda: {"keys": [_p384_jwk()]}, "ES384", id="p384-curve"),
        pytest.param(lambda: {"keys": [_private_jwk()]}, "secret", id="private-key"),
        pytest.param(lambda: {"keys": [_rsa_primes_jwk()]}, "p, q", id="rsa-primes-without-d"),
        pytest.param(
            lambda: {"keys": [{**_private_jwk(), "kid": "enc-1", "use": "enc"}, _rsa_jwk()]},
            "enc-1",
            id="private-encryption-key",
        ),
        pytest.param(
            lambda: {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}, "secret", id="oct"
        ),
    ],
)
def test_unusable_jwks_fails_at_app_creation_in_one_line(make_settings, tmp_path, content, reason):
    value = content()
    path = tmp_path / "jwks.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    settings = make_settings(jwt_secret="", jwt_jwks_file=str(path))
    with pytest.raises(SettingsError, match="REPORTING_SVC_JWT_JWKS_FILE") as caught:
        create_app(settings)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message
