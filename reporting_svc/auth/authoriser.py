"""The default authoriser: a grant for the job's own scope, mode and required permission."""

from ..settings import Settings
from ..storage.record import JobRecord
from .grants import Principal


class GrantAuthoriser:
    """Tenant reports need a tenant grant, and a tenant grant opens tenant reports only.

    It also says which permissions open jobs of a scope and mode (``permissions``), so
    the download list selects what this authoriser allows in the catalog's query.
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self, principal: Principal, record: JobRecord) -> bool:
        return record.requiredPermission in self.permissions(principal, record.scope, record.mode)

    def permissions(self, principal: Principal, scope: str, mode: str) -> frozenset[str]:
        return principal.permissions(scope, mode)
