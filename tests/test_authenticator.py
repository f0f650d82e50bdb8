"""The default JWT authenticator: over HTTP (step 1 of the checks) and called directly."""

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
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Request

from reporting_svc import create_app
from reporting_svc.auth import Grant, Principal
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import JwtAuthenticator, VerifiedTokens
from reporting_svc.errors import Unauthenticated
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings, SettingsError
from tests.support import (
    DOWNLOAD,
    INVALID_TOKEN,
    OTHER_STUDY,
    SECRET,
    STUDY,
    VIEW,
    claims,
    error_of,
)

YEAR_2100 = 4102444800


def sign(key: Any = SECRET, algorithm: str = "HS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=algorithm)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token() -> str:
    """A token with ``alg: none`` and an empty signature, built by hand."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims()).encode())
    return f"{header}.{body}."


def signed_claims(**changes: Any) -> str:
    """An HS256 token over claims PyJWT's encoder would refuse to write (``iss: 5``)."""
    body = json.dumps(claims(**changes)).encode()
    return jwt.PyJWS().encode(body, SECRET, algorithm="HS256")


def request_with(headers: dict[str, str]) -> Request:
    return Request.from_values(DOWNLOAD, headers=headers)


@pytest.fixture
def job_id(publish: Callable[..., Any]) -> str:
    record_id: str = publish(b"a,b\n1,2\n").id
    return record_id


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def public_pem(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    path = tmp_path / "jwt-public.pem"
    path.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def rsa_settings(make_settings: Callable[..., Settings], public_pem: Path) -> Settings:
    return make_settings(jwt_secret="", jwt_public_key_file=str(public_pem))


def test_valid_hs256_token_downloads_the_report(job_id, download):
    response = download({"id": job_id}, sign())
    assert response.status_code == 200
    assert response.data == b"a,b\n1,2\n"


def test_valid_token_yields_its_subject_and_grants(settings):
    principal = JwtAuthenticator(settings)(request_with({"Authorization": f"Bearer {sign()}"}))
    assert principal == Principal("alice", (parse_grant(VIEW),))


def test_bearer_scheme_is_case_insensitive(settings):
    principal = JwtAuthenticator(settings)(request_with({"Authorization": f"bearer {sign()}"}))
    assert principal.subject == "alice"


@pytest.mark.parametrize(
    ("token_of", "reason"),
    [
        pytest.param(lambda: sign(exp=int(time.time()) - 60), "expired", id="expired"),
        pytest.param(lambda: sign(nbf=int(time.time()) + 600), "not yet valid", id="nbf-future"),
        pytest.param(lambda: sign(aud="another-service"), "audience", id="wrong-audience"),
        pytest.param(lambda: sign(iss="someone-else"), "issuer", id="wrong-issuer"),
        pytest.param(lambda: sign(key="another-" + SECRET), "signature", id="other-secret"),
        pytest.param(unsigned_token, "algorithm", id="alg-none"),
        pytest.param(
            lambda: sign(algorithm="HS512"),
            "algorithm",
            id="alg-not-allowed",
            marks=pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
        ),
        pytest.param(lambda: "not-a-jwt", "malformed", id="malformed"),
        pytest.param(lambda: "a.b.c", "malformed", id="malformed-parts"),
        pytest.param(lambda: sign(exp=None), "required claim", id="missing-exp"),
        pytest.param(lambda: sign(sub=None), "required claim", id="missing-sub"),
    ],
)
def test_bad_token_is_refused_as_invalid_token(job_id, download, token_of, reason):
    token = token_of()
    response = download({"id": job_id}, token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    error = error_of(response)
    assert reason in error["details"]
    assert token not in json.dumps(response.get_json())


def _grant(**changes: Any) -> list[dict[str, Any]]:
    return [{"scope": STUDY, "modes": ["test"], "permissions": ["REPORTING_VIEW"], **changes}]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": str(YEAR_2100)}, id="exp-numeric-string"),
        pytest.param({"exp": "tomorrow"}, id="exp-word"),
        pytest.param({"exp": [YEAR_2100]}, id="exp-list"),
        pytest.param({"exp": float("inf")}, id="exp-infinite"),
        pytest.param({"exp": float("nan")}, id="exp-nan"),
        pytest.param({"nbf": "0"}, id="nbf-string"),
        pytest.param({"nbf": True}, id="nbf-boolean"),
        pytest.param({"iat": "0"}, id="iat-string"),
        pytest.param({"iat": {}}, id="iat-object"),
        pytest.param({"iss": 5}, id="iss-number"),
        pytest.param({"iss": ["reporting-svc"]}, id="iss-list"),
        pytest.param({"aud": 5}, id="aud-number"),
        pytest.param({"aud": [5]}, id="aud-list-of-numbers"),
        pytest.param({"aud": {"reporting-svc": True}}, id="aud-object"),
        pytest.param({"sub": 5}, id="sub-number"),
        pytest.param({"sub": ""}, id="sub-empty"),
        pytest.param({"sub": ["alice"]}, id="sub-list"),
        pytest.param({"jti": 5}, id="jti-number"),
        pytest.param({"grants": "x"}, id="grants-string"),
        pytest.param({"grants": {"scope": STUDY}}, id="grants-object"),
        pytest.param({"grants": [5]}, id="grant-number"),
        pytest.param({"grants": _grant(scope=5)}, id="grant-scope-number"),
        pytest.param({"grants": _grant(modes="test")}, id="grant-modes-string"),
        pytest.param({"grants": _grant(modes=[["test"]])}, id="grant-modes-nested"),
        pytest.param({"grants": _grant(permissions=[["REPORTING_VIEW"]])}, id="grant-perm-nested"),
        pytest.param({"grants": _grant(permissions=[5])}, id="grant-perm-number"),
    ],
)
def test_validly_signed_token_with_a_malformed_claim_is_an_invalid_token(job_id, download, changes):
    response = download({"id": job_id}, signed_claims(**changes))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert error_of(response)["errorCode"] == "REPT_401"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": YEAR_2100 + 0.5}, id="exp-fraction"),
        pytest.param({"exp": 10**400}, id="exp-beyond-any-float"),
        pytest.param({"aud": ["another-service", "reporting-svc"]}, id="aud-list"),
        pytest.param({"grants": _grant(modes=["TEST"])}, id="grant-mode-upper-case"),
    ],
)
def test_well_formed_claims_of_every_allowed_shape_are_accepted(job_id, download, changes):
    assert download({"id": job_id}, signed_claims(**changes)).status_code == 200


def test_bad_token_is_refused_before_the_parameters_are_checked(download):
    response = download({"id": "not-a-guid"}, sign(exp=int(time.time()) - 60))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN


def test_missing_authorization_gets_a_plain_bearer_challenge(job_id, download):
    response = download({"id": job_id})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["errorCode"] == "REPT_401"


def test_non_bearer_scheme_gets_a_plain_bearer_challenge(job_id, download):
    response = download({"id": job_id}, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "YWxpY2U6c2VjcmV0" not in response.get_data(as_text=True)


def test_empty_bearer_token_is_an_invalid_token(settings):
    with pytest.raises(Unauthenticated) as caught:
        JwtAuthenticator(settings)(request_with({"Authorization": "Bearer "}))
    assert caught.value.headers["WWW-Authenticate"] == INVALID_TOKEN


def bearer(token: str) -> Request:
    return request_with({"Authorization": f"Bearer {token}"})


def test_a_verified_token_is_not_verified_again_while_it_is_valid(settings, monkeypatch):
    authenticate = JwtAuthenticator(settings)
    checked: list[str] = []
    decode = jwt.decode
    monkeypatch.setattr(
        jwt, "decode", lambda token, *a, **k: checked.append(token) or decode(token, *a, **k)
    )
    token = sign()

    first = authenticate(bearer(token))
    second = authenticate(bearer(token))

    assert first == second == Principal("alice", (parse_grant(VIEW),))
    assert checked == [token]


def test_a_verified_token_is_refused_once_it_has_expired(settings):
    """The clock, PyJWT's included, travels past the expiry the first call kept."""
    authenticate = JwtAuthenticator(settings)
    expires = int(time.time()) + 60
    token = sign(exp=expires)
    assert authenticate(bearer(token)).subject == "alice"

    with (
        time_machine.travel(expires + settings.jwt_leeway + 1, tick=False),
        pytest.raises(Unauthenticated, match="token has expired"),
    ):
        authenticate(bearer(token))


def test_a_token_differing_from_a_verified_one_is_verified_in_full(settings):
    authenticate = JwtAuthenticator(settings)
    authenticate(bearer(sign()))

    with pytest.raises(Unauthenticated, match="signature is invalid"):
        authenticate(bearer(sign(key="another-" + SECRET)))


def test_a_token_with_malformed_grants_is_refused_every_time(settings):
    authenticate = JwtAuthenticator(settings)
    token = sign(grants=[f"{STUDY}:production:REPORTING_VIEW"])

    for _ in range(2):
        with pytest.raises(Unauthenticated, match="grants"):
            authenticate(bearer(token))


def test_verified_tokens_keep_only_the_most_recently_used() -> None:
    verified = VerifiedTokens(size=2)
    principals = {name: Principal(name, ()) for name in ("a", "b", "c")}
    now = time.time()
    verified.put("a", principals["a"], now + 60)
    verified.put("b", principals["b"], now + 60)
    assert verified.get("a", now) == principals["a"]

    verified.put("c", principals["c"], now + 60)

    assert verified.get("b", now) is None
    assert verified.get("a", now) == principals["a"]
    assert verified.get("c", now) == principals["c"]


def test_malformed_grants_claim_is_an_invalid_token(job_id, download):
    token = sign(grants=[f"{STUDY}:production:REPORTING_VIEW"])
    response = download({"id": job_id}, token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert "grants" in error_of(response)["details"]


def test_rs256_token_verified_with_public_key_file(rsa_settings, rsa_key):
    authenticate = JwtAuthenticator(rsa_settings)
    token = sign(key=rsa_key, algorithm="RS256")
    principal = authenticate(request_with({"Authorization": f"Bearer {token}"}))
    assert principal.subject == "alice"
    assert principal.grants == (parse_grant(VIEW),)


def test_rs256_token_downloads_over_http(rsa_settings, rsa_key, tmp_path):
    app = create_app(rsa_settings)
    job = _publish_into(app, tmp_path)
    token = sign(key=rsa_key, algorithm="RS256")
    response = app.test_client().get(
        DOWNLOAD, query_string={"id": job}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.data == b"a\n"


def test_rs256_token_signed_with_another_key_is_refused(rsa_settings):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = sign(key=other, algorithm="RS256")
    with pytest.raises(Unauthenticated, match="signature"):
        JwtAuthenticator(rsa_settings)(request_with({"Authorization": f"Bearer {token}"}))


def test_hs256_token_keyed_with_the_public_pem_is_refused(rsa_settings, public_pem):
    """The algorithm-confusion attack: the public key used as an HMAC secret."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims()).encode())
    signing_input = f"{header}.{body}".encode()
    mac = hmac.new(public_pem.read_bytes(), signing_input, hashlib.sha256).digest()
    token = f"{header}.{body}.{b64url(mac)}"
    with pytest.raises(Unauthenticated) as caught:
        JwtAuthenticator(rsa_settings)(request_with({"Authorization": f"Bearer {token}"}))
    assert caught.value.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert "algorithm" in str(caught.value.details)


def test_unparseable_public_key_file_fails_at_app_creation(make_settings, tmp_path):
    key_file = tmp_path / "broken.pem"
    key_file.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    settings = make_settings(jwt_secret="", jwt_public_key_file=str(key_file))
    with pytest.raises(SettingsError, match="REPORTING_SVC_JWT_PUBLIC_KEY_FILE"):
        create_app(settings)


def test_public_pem_configured_as_shared_secret_fails_at_app_creation(make_settings, public_pem):
    settings = make_settings(jwt_secret=public_pem.read_text())
    with pytest.raises(SettingsError, match="REPORTING_SVC_JWT_SECRET"):
        create_app(settings)


def _private_pem(key: Any, form: str = "PKCS8", password: bytes | None = None) -> str:
    encryption: Any = serialization.NoEncryption()
    if password:
        encryption = serialization.BestAvailableEncryption(password)
    return key.private_bytes(
        serialization.Encoding.PEM, getattr(serialization.PrivateFormat, form), encryption
    ).decode()


@pytest.mark.parametrize(
    "pem_of",
    [
        pytest.param(lambda key, public: _private_pem(key), id="pkcs8"),
        pytest.param(lambda key, public: _private_pem(key, "TraditionalOpenSSL"), id="pkcs1"),
        pytest.param(lambda key, public: _private_pem(key, password=b"pw"), id="encrypted"),
        pytest.param(lambda key, public: public + _private_pem(key), id="after-the-public-key"),
        pytest.param(
            lambda key, public: _private_pem(ec.generate_private_key(ec.SECP256R1())), id="ec"
        ),
    ],
)
def test_public_key_file_holding_a_private_key_fails_at_app_creation(
    make_settings, tmp_path, rsa_key, public_pem, pem_of
):
    key_file = tmp_path / "private.pem"
    key_file.write_text(pem_of(rsa_key, public_pem.read_text()))
    settings = make_settings(jwt_secret="", jwt_public_key_file=str(key_file))

    with pytest.raises(SettingsError, match="REPORTING_SVC_JWT_PUBLIC_KEY_FILE") as caught:
        create_app(settings)

    assert "private key" in str(caught.value)
    assert "\n" not in str(caught.value)


def write_grants(tmp_path: Path, grants: dict[str, list[Any]]) -> str:
    path = tmp_path / "grants.json"
    path.write_text(json.dumps(grants))
    return str(path)


def test_grants_file_wins_over_the_token_claims(make_settings, tmp_path):
    grants_file = write_grants(tmp_path, {"alice": [f"{OTHER_STUDY}:active:REPORTING_VIEW"]})
    authenticate = JwtAuthenticator(make_settings(grants_file=grants_file))
    broad = [
        parse_grant(f"{STUDY}:test,active,training:REPORTING_VIEW,UNBLINDED").to_claim(),
        parse_grant("tenant:test,active,training:REPORTING_VIEW").to_claim(),
    ]
    token = sign(grants=broad)
    principal = authenticate(request_with({"Authorization": f"Bearer {token}"}))
    assert principal.grants == (
        Grant(OTHER_STUDY, frozenset({"active"}), frozenset({"REPORTING_VIEW"})),
    )


def test_grants_file_refuses_a_job_the_token_alone_would_open(make_settings, tmp_path):
    grants_file = write_grants(tmp_path, {"alice": [f"{OTHER_STUDY}:test:REPORTING_VIEW"]})
    app = create_app(make_settings(grants_file=grants_file))
    job = _publish_into(app, tmp_path)
    response = app.test_client().get(
        DOWNLOAD, query_string={"id": job}, headers={"Authorization": f"Bearer {sign()}"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
    assert "REPORTING_VIEW" in error_of(response)["details"]


def test_grants_file_opens_a_job_for_its_subject(make_settings, tmp_path):
    grants_file = write_grants(tmp_path, {"alice": [VIEW]})
    app = create_app(make_settings(grants_file=grants_file))
    job = _publish_into(app, tmp_path)
    response = app.test_client().get(
        DOWNLOAD, query_string={"id": job}, headers={"Authorization": f"Bearer {sign(grants=[])}"}
    )
    assert response.status_code == 200


def test_subject_absent_from_grants_file_is_refused_at_authorisation(make_settings, tmp_path):
    grants_file = write_grants(tmp_path, {"bob": [VIEW]})
    app = create_app(make_settings(grants_file=grants_file))
    job = _publish_into(app, tmp_path)
    response = app.test_client().get(
        DOWNLOAD, query_string={"id": job}, headers={"Authorization": f"Bearer {sign()}"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
    assert "Unauthorized" in error_of(response)["errorMessage"]


def _publish_into(app: Any, tmp_path: Path) -> str:
    source = tmp_path / "report.csv"
    source.write_bytes(b"a\n")
    record = publish_report(
        app.extensions["reporting_svc"].store,
        source,
        report_name="Extract",
        mode="test",
        study_id=STUDY,
    )
    return record.id
