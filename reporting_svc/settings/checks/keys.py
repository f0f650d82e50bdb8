"""The signing key: one kind of key, files that exist, algorithms that fit the key."""

from __future__ import annotations

from pathlib import Path

from ..errors import SettingsError
from ..model import PREFIX, Settings

ALLOWED_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384"}
)
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def check_keys(settings: Settings) -> None:
    """At most one kind of key, every file named readable, algorithms the key can verify."""
    keys = [
        name
        for name, value in [
            ("JWT_SECRET", settings.jwt_secret),
            ("JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
            ("JWT_JWKS_FILE", settings.jwt_jwks_file),
        ]
        if value
    ]
    if len(keys) > 1:
        raise SettingsError(f"set only one of {', '.join(PREFIX + name for name in keys)}")
    _check_files(settings)
    if settings.jwt_leeway < 0:
        raise SettingsError(f"{PREFIX}JWT_LEEWAY must not be negative")
    _check_algorithms(settings)
    _check_secret_length(settings)


def _check_files(settings: Settings) -> None:
    for name, path in [
        ("JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
        ("JWT_JWKS_FILE", settings.jwt_jwks_file),
        ("GRANTS_FILE", settings.grants_file),
        ("S3_CA_BUNDLE", settings.s3_ca_bundle),
    ]:
        if path and not Path(path).is_file():
            raise SettingsError(f"{PREFIX}{name} {path} is not a readable file")


def _check_algorithms(settings: Settings) -> None:
    bad = [alg for alg in settings.algorithms if alg not in ALLOWED_ALGORITHMS]
    if bad:
        raise SettingsError(
            f"{PREFIX}JWT_ALGORITHMS has unsupported algorithm(s): {', '.join(bad)}"
        )
    symmetric = {alg.startswith("HS") for alg in settings.algorithms}
    public = settings.jwt_public_key_file or settings.jwt_jwks_file
    if public and True in symmetric:
        raise SettingsError(f"{PREFIX}JWT_ALGORITHMS lists HS* but public keys are configured")
    if settings.jwt_secret and False in symmetric:
        raise SettingsError(
            f"{PREFIX}JWT_ALGORITHMS lists public-key algorithms but only a secret is set"
        )


def _check_secret_length(settings: Settings) -> None:
    """RFC 7518 §3.2: an HMAC key at least as long as its hash (32 bytes for HS256)."""
    needed = max((HMAC_KEY_BYTES.get(alg, 0) for alg in settings.algorithms), default=0)
    if settings.jwt_secret and len(settings.jwt_secret.encode()) < needed:
        raise SettingsError(
            f"{PREFIX}JWT_SECRET must be at least {needed} bytes for"
            f" {', '.join(settings.algorithms)} (for example: openssl rand -base64 {needed})"
        )
