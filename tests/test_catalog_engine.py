"""The process's database engines: one per database, sized by the settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from reporting_svc.audit import make_audit_trail
from reporting_svc.catalog import make_catalog
from reporting_svc.settings import Settings, worker_processes

# Nothing listens here: an engine connects only when first used, and these tests use none.
SERVER = "postgresql+psycopg://reporting_svc@127.0.0.1:1"
#: PostgreSQL's defaults: max_connections, and superuser_reserved_connections of them.
MAX_CONNECTIONS, RESERVED = 100, 3
#: The several-hosts recipe's hosts (docs/deploying.md).
HOSTS = 3


def engines(settings: Settings) -> tuple[sa.Engine, sa.Engine]:
    """The engines the catalog and the audit trail of ``settings`` use in this process."""
    catalog, trail = make_catalog(settings), make_audit_trail(settings)
    chained: Any = trail.chained
    return catalog.engines.get(checked=False), chained.engines.get(checked=False)


@pytest.fixture
def on_postgres(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings whose catalog and audit trail are PostgreSQL: ``on_postgres(audit_url=...)``."""

    def make(**overrides: Any) -> Settings:
        return make_settings(catalog_url=f"{SERVER}/reporting", audit_sink="postgres", **overrides)

    return make


def test_catalog_and_audit_trail_on_one_database_share_one_engine(on_postgres):
    catalog, audit = engines(on_postgres())

    assert catalog is audit


def test_catalog_and_audit_trail_on_two_databases_have_an_engine_each(on_postgres):
    catalog, audit = engines(on_postgres(audit_url=f"{SERVER}/audit"))

    assert catalog is not audit
    assert catalog.url.database == "reporting"
    assert audit.url.database == "audit"


def test_the_pool_settings_size_every_engine(on_postgres):
    catalog, audit = engines(
        on_postgres(audit_url=f"{SERVER}/audit", database_pool_size=3, database_pool_overflow=5)
    )

    for engine in (catalog, audit):
        assert isinstance(engine.pool, sa.pool.QueuePool)
        assert (engine.pool.size(), engine.pool._max_overflow) == (3, 5)


def test_by_default_three_hosts_fit_a_default_postgresql(
    on_postgres, monkeypatch: pytest.MonkeyPatch
):
    """docs/deploying.md's rule: hosts x workers x (pool + overflow) below max_connections
    less the superuser's reserved ones, with gunicorn's default workers on 2 CPUs."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    settings = on_postgres()
    per_process = settings.database_pool_size + settings.database_pool_overflow

    assert HOSTS * worker_processes({}) * per_process <= MAX_CONNECTIONS - RESERVED
