"""Black-box: JWKS keys rotate by editing the file and reloading gunicorn (SIGHUP)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support import DOWNLOAD, STUDY, public_jwk

pytestmark = pytest.mark.integration


def token_for(key: Any, kid: str, algorithm: str) -> str:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "iss": "reporting-svc",
        "aud": "reporting-svc",
        "iat": now,
        "exp": now + 600,
        "grants": [f"{STUDY}:test:REPORTING_VIEW"],
    }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def write_jwks_atomically(path: Path, keys: dict[str, Any]) -> None:
    """Write next to the file, then rename over it, so a worker never reads half a file."""
    staging = path.with_suffix(".new")
    staging.write_text(json.dumps({"keys": [public_jwk(key, kid) for kid, key in keys.items()]}))
    os.replace(staging, path)


@pytest.fixture
def jwks_env(service_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = {**service_env, "REPORTING_SVC_JWT_JWKS_FILE": str(tmp_path / "jwks.json")}
    del env["REPORTING_SVC_JWT_SECRET"]
    return env


def test_reload_after_rotation_refuses_the_retired_key(
    jwks_env: dict[str, str],
    cli_publish: Callable[..., dict[str, Any]],
    serve: Callable[..., str],
    reload_server: Callable[[], None],
    tmp_path: Path,
) -> None:
    old_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_key = ec.generate_private_key(ec.SECP256R1())
    jwks = Path(jwks_env["REPORTING_SVC_JWT_JWKS_FILE"])
    write_jwks_atomically(jwks, {"2024": old_key, "2025": new_key})
    report = tmp_path / "report.csv"
    report.write_text("subjectId\nS-0001\n")
    job = cli_publish(jwks_env, report)["id"]
    base = serve(jwks_env)
    old, new = token_for(old_key, "2024", "RS256"), token_for(new_key, "2025", "ES256")

    def get(token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.get(base + DOWNLOAD, params={"id": job}, headers=headers, timeout=30)

    assert get(old).status_code == 200
    assert get(new).status_code == 200

    write_jwks_atomically(jwks, {"2025": new_key})
    reload_server()
    deadline = time.monotonic() + 30
    refused = get(old)
    while refused.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # old workers finish while the new ones, with the new file, start
        refused = get(old)

    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "not known" in refused.json()["errorData"]["details"]
    assert get(new).status_code == 200


def test_serve_refuses_to_start_with_a_malformed_jwks(
    jwks_env: dict[str, str], cli: Callable[..., Any]
) -> None:
    Path(jwks_env["REPORTING_SVC_JWT_JWKS_FILE"]).write_text('{"keys": [{"kty": "RSA"}]}')
    result = cli("serve", "--bind", "127.0.0.1:1", env=jwks_env, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "REPORTING_SVC_JWT_JWKS_FILE" in lines[0]
