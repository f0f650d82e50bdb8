"""``reporting-svc check`` against a real PostgreSQL: as the service's role it names a
schema not upgraded yet (and upgrades nothing), then passes under the documented roles, and
says whether one host's connection pools fit the server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import postgres

pytestmark = pytest.mark.integration

#: The several-hosts recipe's hosts, and gunicorn's default workers on 2 CPUs.
HOSTS, WORKERS = 3, 4


def test_check_reaches_postgresql_as_the_service_role_and_sizes_its_pools(
    postgres_server: postgres.Postgres,
    command: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    owner = postgres_server.create_database()
    database = owner.rsplit("/", 1)[1]
    monkeypatch.setenv("WEB_CONCURRENCY", str(WORKERS))
    (tmp_path / "reports").mkdir()

    code, _, err = command("check", CATALOG_URL=owner, AUDIT_SINK="postgres")

    assert code == 1
    assert err.splitlines() == [
        "reporting-svc: error: the catalog is at revision none (no tables), not this"
        " version's 0003: run `reporting-svc catalog upgrade` as the tables' owner",
        "reporting-svc: error: the audit database is at revision none (no tables), not this"
        " version's a0002: run `reporting-svc audit grant ROLE` as the tables' owner",
    ]
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert postgres_server.psql(tables, database).strip() == "0"

    role = f"svc_{database}"  # roles are the session server's: one per database
    service = postgres_server.create_service_role(owner, role)
    code, out, err = command("check", CATALOG_URL=service)

    assert (code, err) == (0, "")
    assert "OK: the catalog answers, at revision 0003" in out
    assert "OK: the audit database answers, at revision a0002" in out
    fit = re.search(r"OK: PostgreSQL takes (\d+) connections: (\d+) host\(s\)", out)
    assert fit is not None, out
    if postgres_server.psql("SHOW max_connections").strip() == "100":
        assert int(fit[1]) == 97
        assert int(fit[2]) >= HOSTS  # the recipe's three hosts fit a default server

    postgres_server.psql(f"REVOKE SELECT ON count_horizon FROM {role}", database)
    monkeypatch.setenv("WEB_CONCURRENCY", "100")
    code, _, err = command("check")

    assert code == 1
    assert err.splitlines() == [
        "reporting-svc: error: the catalog's role lacks SELECT ON count_horizon",
        f"reporting-svc: error: one host may open 600 PostgreSQL connections (100 workers"
        f" (WEB_CONCURRENCY) x 1 database(s) x (REPORTING_SVC_DATABASE_POOL_SIZE 4 +"
        f" REPORTING_SVC_DATABASE_POOL_OVERFLOW 2)), more than the {fit[1]} the server takes"
        f" (max_connections {int(fit[1]) + 3} less 3 reserved): lower them, or raise"
        " max_connections",
    ]
