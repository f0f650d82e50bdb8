"""The default authoriser: a grant for the job's own scope, mode and required permission."""

from ..settings import Settings
from ..storage.record import TENANT_SCOPE, JobRecord
from .grants import Principal


class GrantAuthoriser:
    """Tenant reports need a tenant grant, and a tenant grant opens tenant reports only."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self, principal: Principal, record: JobRecord) -> bool:
        scope = record.studyId or TENANT_SCOPE
        return any(
            grant.scope == scope
            and record.mode in grant.modes
            and record.requiredPermission in grant.permissions
            for grant in principal.grants
        )
