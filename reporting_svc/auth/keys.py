"""Verification keys: a shared secret, a PEM public key, or a JWKS file picked by ``kid``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt.algorithms import get_default_algorithms

from ..settings import NO_KEY, PREFIX, Settings, SettingsError

Key = str | jwt.PyJWK
# RFC 7518 §6.3.2 and §6.4: the private members of RSA, EC and OKP keys, and a symmetric key.
_SECRET_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


class MissingKeyIdError(jwt.InvalidTokenError):
    """A token checked against a JWKS must say which key signed it."""


class UnknownKeyIdError(jwt.InvalidTokenError):
    """The token's ``kid`` names no key of the JWKS: a retired key, or a forgery."""


class Keys(Protocol):
    """Which key, and which algorithms, verify a given token."""

    def for_token(self, token: str) -> tuple[Key, list[str]]: ...


class StaticKey:
    """One secret or public key that verifies every token."""

    def __init__(self, key: str, algorithms: list[str]):
        self.key = key
        self.algorithms = algorithms

    def for_token(self, token: str) -> tuple[Key, list[str]]:
        return self.key, self.algorithms


class JwksKeys:
    """Keys of a JWKS file; the token's ``kid`` picks one, and only that key's algorithm."""

    def __init__(self, keys: dict[str, jwt.PyJWK]):
        self.keys = keys

    def for_token(self, token: str) -> tuple[Key, list[str]]:
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None:
            raise MissingKeyIdError("token names no key")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKeyIdError("token names an unknown key")
        # Only the key's own algorithm: a header claiming another one (HS256 keyed with the
        # public key, ES256 for an RSA key) fails the allow-list instead of reaching a verifier.
        return key, [key.algorithm_name]


def load_keys(settings: Settings) -> Keys:
    """The configured keys, read and checked now so that a bad one, or none, fails start-up."""
    if not settings.has_key:
        raise SettingsError(NO_KEY)
    if settings.jwt_jwks_file:
        return JwksKeys(_jwks(Path(settings.jwt_jwks_file), settings.algorithms))
    return StaticKey(_verification_key(settings), list(settings.algorithms))


def _jwks(path: Path, algorithms: tuple[str, ...]) -> dict[str, jwt.PyJWK]:
    """Every signing key of the set, by ``kid``; any key we could not use stops start-up.

    PyJWKSet would skip unusable keys silently, leaving tokens to fail one by one later.
    """
    setting = f"{PREFIX}JWT_JWKS_FILE {path}"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SettingsError(f"{setting} is not a readable JSON file: {error}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SettingsError(f'{setting} must be a JSON Web Key Set: {{"keys": [...]}}')
    keys: dict[str, jwt.PyJWK] = {}
    for item in entries:
        try:
            entry = _public_entry(item)
            if entry.get("use") == "enc":
                continue  # an encryption key never verifies a signature
            kid, key = _jwk(entry, algorithms)
        except ValueError as error:
            raise SettingsError(f"{setting}: {error}") from None
        if kid in keys:
            raise SettingsError(f"{setting}: two keys have kid {kid!r}")
        keys[kid] = key
    if not keys:
        raise SettingsError(f"{setting} holds no signing key")
    return keys


def _public_entry(entry: Any) -> dict[str, Any]:
    """One key of the set as a JSON object; any key with secret members, even one for
    encryption, is refused: a verifier needs public keys only, and a private one here
    means a signing key has been copied to one place too many."""
    if not isinstance(entry, dict):
        raise ValueError("every key must be a JSON object")
    secret = sorted(_SECRET_MEMBERS & set(entry))
    if secret:
        name = entry.get("kid")
        raise ValueError(
            f"key {name!r} holds secret material ({', '.join(secret)}); publish public keys only"
        )
    return entry


def _jwk(entry: dict[str, Any], algorithms: tuple[str, ...]) -> tuple[str, jwt.PyJWK]:
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("every key needs a kid, the name tokens pick it by")
    try:
        key = jwt.PyJWK(entry)
    except jwt.PyJWTError as error:
        raise ValueError(f"key {kid!r} is not usable: {error}") from None
    if key.algorithm_name not in algorithms:
        allowed = ", ".join(algorithms)
        raise ValueError(f"key {kid!r} is for {key.algorithm_name}, not one of {allowed}")
    return kid, key


def _verification_key(settings: Settings) -> str:
    """The secret or public key PEM, checked against every configured algorithm now.

    PyJWT parses the key only when a token arrives, so an unusable key file would
    otherwise pass start-up and turn every request into a 500.
    """
    if settings.jwt_public_key_file:
        setting = "JWT_PUBLIC_KEY_FILE"
        try:
            key = Path(settings.jwt_public_key_file).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise SettingsError(f"{PREFIX}{setting} cannot be read: {error}") from None
        if _PEM_PRIVATE_KEY.search(key):
            raise SettingsError(
                f"{PREFIX}{setting} holds a private key; give the service only the public key"
                " (openssl pkey -pubout)"
            )
    else:
        setting, key = "JWT_SECRET", settings.jwt_secret
    algorithms = get_default_algorithms()
    for name in settings.algorithms:
        try:
            algorithms[name].prepare_key(key)
        except jwt.InvalidKeyError as error:
            raise SettingsError(f"{PREFIX}{setting} is not a usable {name} key: {error}") from None
    return key
