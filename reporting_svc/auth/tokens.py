"""The default authenticator: a bearer JWT verified with PyJWT, and dev-token minting."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import cast

import jwt
from flask import Request

from ..errors import Unauthenticated
from ..settings import NO_KEY, PREFIX, Settings, SettingsError
from .bearer import bearer_token
from .grants import Grant, GrantError, Principal, grants_from_json, load_grants_file
from .keys import MissingKeyIdError, UnknownKeyIdError, load_keys

_NUMERIC_DATES = ("exp", "nbf", "iat")
_REASONS: list[tuple[type[Exception], str]] = [
    (MissingKeyIdError, "token names no key (kid)"),
    (UnknownKeyIdError, "token key (kid) is not known"),
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not yet valid"),
    (jwt.InvalidAudienceError, "token is meant for another audience"),
    (jwt.InvalidIssuerError, "token comes from another issuer"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.DecodeError, "token is malformed"),
]


class JwtAuthenticator:
    """Verify ``Authorization: Bearer <jwt>``; grants from a grants file, else the token."""

    def __init__(self, settings: Settings):
        self.keys = load_keys(settings)
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway
        self.grants_by_subject = _grants_file(settings)
        self.verified = VerifiedTokens()

    def __call__(self, request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            raise Unauthenticated("a bearer token is required", token_sent=False)
        principal = self.verified.get(token, time.time())
        if principal is None:
            claims = self._verify(token)
            principal = self._principal(claims)
            expires = cast(float, claims["exp"])  # a finite number: _verify has checked
            self.verified.put(token, principal, expires + self.leeway)
        return principal

    def _principal(self, claims: dict[str, object]) -> Principal:
        subject = str(claims["sub"])
        if self.grants_by_subject is not None:
            return Principal(subject, self.grants_by_subject.get(subject, ()))
        try:
            return Principal(subject, grants_from_json(claims.get("grants", [])))
        except GrantError:
            raise Unauthenticated("token grants are malformed", token_sent=True) from None

    def _verify(self, token: str) -> dict[str, object]:
        try:
            key, algorithms = self.keys.for_token(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(_reason(error), token_sent=True) from None
        malformed = _malformed_claim(claims)
        if malformed:
            raise Unauthenticated(f"token claim {malformed} is malformed", token_sent=True)
        return claims


class VerifiedTokens:
    """Tokens this process has verified, each kept until it expires.

    A data pipeline sends the same token with every request, and checking its signature
    was the largest single cost of a small download. Only a token that passed every check
    is kept, under its exact text, so a token altered by one byte is checked in full. Keys
    and the grants file are read once per process, so an entry cannot outlive them; the
    expiry is checked on every use, and the claims ``nbf`` and ``iat`` only become more
    valid with time.
    """

    def __init__(self, size: int = 1024):
        self.size = size
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, now: float) -> Principal | None:
        """The token's principal if it was verified and has not expired since."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            principal, expires = entry
            if now >= expires:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return principal

    def put(self, token: str, principal: Principal, expires: float) -> None:
        """Keep a verified token until ``expires``; the least recently used one makes room."""
        with self._lock:
            self._entries[token] = (principal, expires)
            self._entries.move_to_end(token)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def _grants_file(settings: Settings) -> dict[str, tuple[Grant, ...]] | None:
    """The grants file, read once at start-up; any bad entry stops start-up, not a request."""
    if not settings.grants_file:
        return None
    try:
        return load_grants_file(Path(settings.grants_file))
    except (OSError, ValueError) as error:
        raise SettingsError(f"{PREFIX}GRANTS_FILE {settings.grants_file}: {error}") from None


def _malformed_claim(claims: dict[str, object]) -> str | None:
    """The first claim PyJWT let through whose JSON type RFC 7519 does not allow, if any.

    PyJWT reads the dates with ``int()``, so ``"exp": "9999999999"`` or ``"nbf": true``
    passes its checks; a NumericDate is a JSON number. The subject names the caller in
    the audit trail, so it must be a non-empty string. (PyJWT itself refuses an ``iss``,
    ``aud`` or ``sub`` of another type; the grants are checked where they are read.)
    """
    for name in _NUMERIC_DATES:
        if name in claims and not _is_numeric_date(claims[name]):
            return name
    subject = claims["sub"]
    return None if isinstance(subject, str) and subject else "sub"


def _is_numeric_date(value: object) -> bool:
    """A JSON number: an int of any size, or a finite float; ``true`` is no number."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _reason(error: jwt.InvalidTokenError) -> str:
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "token is invalid"


def mint_token(settings: Settings, subject: str, grants: list[Grant], ttl: int = 3600) -> str:
    """Sign a token with the configured shared secret, for development and tests."""
    if not settings.has_key:
        raise SettingsError(NO_KEY)
    if not settings.jwt_secret:
        raise ValueError("minting needs a shared secret; a public key cannot sign")
    now = int(time.time())
    claims = {
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "grants": [grant.to_claim() for grant in grants],
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.algorithms[0])
