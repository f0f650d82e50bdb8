"""Which runs a caller may list (docs/api.md §5): those of the modes the authoriser lets it
list (``may_list``) that it lets the caller download.

An authoriser that names its permissions per scope and mode (the default one does) is
turned into the catalog's query, so the database filters, counts and pages. Any other
authoriser is asked about each run of the scope, in order: correct, and slower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ..auth import Authoriser, PermissionsAuthoriser, Principal
from ..catalog import Catalog, Page, Selection
from ..errors import ListingForbidden
from ..storage.record import MODES, TENANT_SCOPE


@dataclass(frozen=True)
class ListingQuery:
    """The download list's parameters, validated; ``study_id`` None is the tenant."""

    study_id: str | None
    limit: int
    offset: int
    mode: str | None = None
    rpt_id: str | None = None
    report_name: str | None = None

    @property
    def scope(self) -> str:
        return self.study_id or TENANT_SCOPE

    @property
    def modes(self) -> tuple[str, ...]:
        return (self.mode,) if self.mode else MODES


def list_runs(
    catalog: Catalog,
    authorise: Authoriser,
    principal: Principal,
    query: ListingQuery,
    now: datetime,
) -> Page:
    """One page of the runs ``principal`` could download at ``now``; ListingForbidden when
    the authoriser lets it list none of the query's modes in the query's scope."""
    modes = [mode for mode in query.modes if authorise.may_list(principal, query.scope, mode)]
    if not modes:
        raise ListingForbidden(query.scope, query.mode)
    if isinstance(authorise, PermissionsAuthoriser):
        held = {mode: authorise.permissions(principal, query.scope, mode) for mode in modes}
        visible = {mode: permissions for mode, permissions in held.items() if permissions}
        return catalog.page(_selection(query, visible), query.limit, query.offset, now)
    return catalog.filtered_page(
        _selection(query, dict.fromkeys(modes)),
        lambda record: authorise(principal, record),
        query.limit,
        query.offset,
        now,
    )


def _selection(query: ListingQuery, modes: Mapping[str, frozenset[str] | None]) -> Selection:
    return Selection(query.scope, modes, query.rpt_id, query.report_name)
