"""Who may download: the authenticator and authoriser hooks and their defaults."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from flask import Request

from ..settings import Settings, SettingsError
from ..storage.record import JobRecord
from .authoriser import GrantAuthoriser
from .grants import Grant, Principal
from .tokens import JwtAuthenticator

Authenticator = Callable[[Request], Principal]
Authoriser = Callable[[Principal, JobRecord], bool]


@runtime_checkable
class PermissionsAuthoriser(Protocol):
    """An authoriser that can also name, for a scope and mode, the permissions that open a
    job there for the caller; ``authorise(p, r)`` must then equal
    ``r.requiredPermission in permissions(p, r.scope, r.mode)``.

    The download list turns those sets into its catalog query. An authoriser with only
    the yes/no call still works there, but every run of the scope is read and asked.
    """

    def __call__(self, principal: Principal, record: JobRecord) -> bool: ...

    def permissions(self, principal: Principal, scope: str, mode: str) -> frozenset[str]: ...


def make_authenticator(settings: Settings) -> Authenticator:
    """The hook ``REPORTING_SVC_AUTHENTICATOR`` names (a factory taking settings), or JWT."""
    factory = _load(settings.authenticator, "AUTHENTICATOR") if settings.authenticator else None
    return (factory or JwtAuthenticator)(settings)


def make_authoriser(settings: Settings) -> Authoriser:
    """The hook ``REPORTING_SVC_AUTHORISER`` names (a factory taking settings), or grants."""
    factory = _load(settings.authoriser, "AUTHORISER") if settings.authoriser else None
    return (factory or GrantAuthoriser)(settings)


def _load(path: str, setting: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        raise SettingsError(
            f"REPORTING_SVC_{setting} {path!r} is not an importable 'module:callable'"
        ) from None


__all__ = [
    "Authenticator",
    "Authoriser",
    "Grant",
    "PermissionsAuthoriser",
    "Principal",
    "make_authenticator",
    "make_authoriser",
]
