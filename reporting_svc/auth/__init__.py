"""Who may download: the authenticator and authoriser hooks and their defaults."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flask import Request

from ..settings import Settings, SettingsError
from .authoriser import Authoriser, GrantAuthoriser, PermissionsAuthoriser, as_authoriser
from .grants import Grant, Principal
from .tokens import JwtAuthenticator

Authenticator = Callable[[Request], Principal]


def make_authenticator(settings: Settings) -> Authenticator:
    """The hook ``REPORTING_SVC_AUTHENTICATOR`` names (a factory taking settings), or JWT."""
    factory = _load(settings.authenticator, "AUTHENTICATOR") if settings.authenticator else None
    return (factory or JwtAuthenticator)(settings)


def make_authoriser(settings: Settings) -> Authoriser:
    """The hook ``REPORTING_SVC_AUTHORISER`` names (a factory taking settings), or grants.

    A hook without ``may_list`` gets the default listing rule (``as_authoriser``).
    """
    factory = _load(settings.authoriser, "AUTHORISER") if settings.authoriser else None
    return as_authoriser((factory or GrantAuthoriser)(settings))


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
