"""The authoriser hook: what a caller may download and what it may list, and its defaults.

A deployment's authoriser decides both. A hook without ``may_list`` gets the default
listing rule: a plain ``(principal, record) -> bool`` callable lists by the principal's
grants; one that names ``permissions`` lists where it names any (``as_authoriser``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..settings import Settings
from ..storage.record import JobRecord
from .grants import Principal


@runtime_checkable
class Authoriser(Protocol):
    """Whether ``principal`` may download ``record`` (the call), and whether it may list
    the runs of a scope (a study id or ``tenant``) in a mode at all (``may_list``).

    The download list shows the runs of the modes it may list that the call allows;
    a query none of whose modes it may list is 403.
    """

    def __call__(self, principal: Principal, record: JobRecord) -> bool: ...

    def may_list(self, principal: Principal, scope: str, mode: str) -> bool: ...


@runtime_checkable
class NamesPermissions(Protocol):
    """A hook that can also name, for a scope and mode, the permissions that open a job
    there for the caller; ``authorise(p, r)`` must then equal
    ``r.requiredPermission in permissions(p, r.scope, r.mode)``."""

    def __call__(self, principal: Principal, record: JobRecord) -> bool: ...

    def permissions(self, principal: Principal, scope: str, mode: str) -> frozenset[str]: ...


@runtime_checkable
class PermissionsAuthoriser(Authoriser, NamesPermissions, Protocol):
    """An authoriser that names permissions: the download list turns those sets into its
    catalog query. An authoriser without them still works there, but every run of the
    scope is read and asked."""


def holds_a_grant(principal: Principal, scope: str, mode: str) -> bool:
    """The default listing rule: a grant, of any permission, for the scope and mode."""
    return bool(principal.permissions(scope, mode))


class ListingByGrants:
    """A plain yes/no hook made an ``Authoriser``: it decides downloads, and listing
    follows the principal's grants (``holds_a_grant``)."""

    def __init__(self, decide: Callable[[Principal, JobRecord], bool]):
        self.decide = decide

    def __call__(self, principal: Principal, record: JobRecord) -> bool:
        return self.decide(principal, record)

    def may_list(self, principal: Principal, scope: str, mode: str) -> bool:
        return holds_a_grant(principal, scope, mode)


class ListingByPermissions:
    """A hook that names permissions but has no ``may_list``: it may list a scope and
    mode where it names any permission, so the catalog's query still filters."""

    def __init__(self, hook: NamesPermissions):
        self.hook = hook

    def __call__(self, principal: Principal, record: JobRecord) -> bool:
        return self.hook(principal, record)

    def may_list(self, principal: Principal, scope: str, mode: str) -> bool:
        return bool(self.hook.permissions(principal, scope, mode))

    def permissions(self, principal: Principal, scope: str, mode: str) -> frozenset[str]:
        return self.hook.permissions(principal, scope, mode)


def as_authoriser(hook: Callable[[Principal, JobRecord], bool]) -> Authoriser:
    """The hook a factory returned, with the default listing rule when it has none."""
    if isinstance(hook, Authoriser):
        return hook
    if isinstance(hook, NamesPermissions):
        return ListingByPermissions(hook)
    return ListingByGrants(hook)


class GrantAuthoriser:
    """The default: a grant for the job's own scope, mode and required permission.

    Tenant reports need a tenant grant, and a tenant grant opens tenant reports only.
    It also says which permissions open jobs of a scope and mode (``permissions``), so
    the download list selects what this authoriser allows in the catalog's query.
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self, principal: Principal, record: JobRecord) -> bool:
        return record.requiredPermission in self.permissions(principal, record.scope, record.mode)

    def may_list(self, principal: Principal, scope: str, mode: str) -> bool:
        return holds_a_grant(principal, scope, mode)

    def permissions(self, principal: Principal, scope: str, mode: str) -> frozenset[str]:
        return principal.permissions(scope, mode)
