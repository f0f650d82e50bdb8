"""The composition root: the per-process objects a request uses, built once by the app factory.

No rule lives here; the rules of jobs are in ``jobs/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .audit import AuditTrail, make_audit_trail
from .auth import Authenticator, Authoriser, make_authenticator, make_authoriser
from .catalog import Catalog, make_catalog
from .http.delivery import Delivery, make_delivery
from .settings import Settings
from .storage import Store, make_store


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    """Store, catalog, auth hooks and delivery for one app; shared by all its threads.

    ``clock`` is what "now" means for expiry and listing; tests hold it still.
    """

    settings: Settings
    store: Store
    catalog: Catalog
    authenticate: Authenticator
    authorise: Authoriser
    delivery: Delivery
    audit: AuditTrail
    clock: Callable[[], datetime] = utc_now

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        store = make_store(settings)
        return cls(
            settings=settings,
            store=store,
            catalog=make_catalog(settings),
            authenticate=make_authenticator(settings),
            authorise=make_authoriser(settings),
            delivery=make_delivery(settings, store),
            audit=make_audit_trail(settings),
        )
