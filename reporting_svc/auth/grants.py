"""Grants: what a caller may download, per scope (a study or the tenant), mode and permission."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from ..ids import normalise_guid
from ..storage.record import MODES, TENANT_SCOPE


class GrantError(ValueError):
    """A grant that cannot be understood; never widened into access."""


@dataclass(frozen=True)
class Grant:
    scope: str
    modes: frozenset[str]
    permissions: frozenset[str]

    def to_claim(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "modes": sorted(self.modes),
            "permissions": sorted(self.permissions),
        }


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its subject and its grants."""

    subject: str
    grants: tuple[Grant, ...]

    def permissions(self, scope: str, mode: str) -> frozenset[str]:
        """Every permission the caller's grants give in one scope and mode."""
        held: set[str] = set()
        for grant in self.grants:
            if grant.scope == scope and mode in grant.modes:
                held |= grant.permissions
        return frozenset(held)


def make_grant(scope: str, modes: list[str], permissions: list[str]) -> Grant:
    """Validate and normalise one grant's parts."""
    if scope.lower() == TENANT_SCOPE:
        scope = TENANT_SCOPE
    else:
        try:
            scope = normalise_guid(scope)
        except ValueError:
            raise GrantError(f"scope must be a study id or 'tenant', not {scope!r}") from None
    mode_set = frozenset(mode.strip().lower() for mode in modes if mode.strip())
    unknown = sorted(mode_set - set(MODES))
    if unknown or not mode_set:
        raise GrantError(f"modes must be some of {', '.join(MODES)}")
    permission_set = frozenset(p.strip() for p in permissions if p.strip())
    if not permission_set:
        raise GrantError("a grant needs at least one permission")
    return Grant(scope, mode_set, permission_set)


def parse_grant(text: str) -> Grant:
    """Parse ``SCOPE:MODES:PERMISSIONS``, modes and permissions comma-separated."""
    parts = text.split(":")
    if len(parts) != 3:
        raise GrantError(f"grant {text!r} must read SCOPE:MODES:PERMISSIONS")
    scope, modes, permissions = parts
    return make_grant(scope, modes.split(","), permissions.split(","))


def grant_from_json(value: object) -> Grant:
    """Read a grant given as ``SCOPE:MODES:PERMISSIONS`` or as ``{scope, modes, permissions}``."""
    if isinstance(value, str):
        return parse_grant(value)
    if isinstance(value, dict):
        modes, permissions = value.get("modes"), value.get("permissions")
        scope = value.get("scope")
        if isinstance(scope, str) and _strings(modes) and _strings(permissions):
            return make_grant(scope, modes, permissions)
    raise GrantError("a grant must be a SCOPE:MODES:PERMISSIONS string or an object")


def _strings(value: object) -> TypeGuard[list[str]]:
    """A JSON list of strings; ``[["P"]]`` is not widened into the permission ``"['P']"``."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def grants_from_json(values: object) -> tuple[Grant, ...]:
    if not isinstance(values, list):
        raise GrantError("grants must be a list")
    return tuple(grant_from_json(value) for value in values)


def load_grants_file(path: Path) -> dict[str, tuple[Grant, ...]]:
    """Read ``{"subject": [grant, ...], ...}``; any bad entry fails at start-up."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise GrantError(f"{path} must hold an object keyed by subject")
    return {str(subject): grants_from_json(grants) for subject, grants in data.items()}
