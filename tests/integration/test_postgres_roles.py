"""The service on PostgreSQL under exactly the deployment guide's roles: it lists, downloads and is
ready with the documented grants, and readiness names a privilege taken away."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

import pytest
import requests

from harness import postgres
from harness.postgres import DOCUMENTED_AUDITOR, DOCUMENTED_ROLE, PROJECT, documented_role_commands
from tests.integration import processes as p
from tests.support import DOWNLOAD, DOWNLOAD_LIST, STUDY

pytestmark = pytest.mark.integration

ROLES_SQL = PROJECT / "config" / "postgres-roles.sql"
HOUR_US = 3600 * 1_000_000
LISTING = {"studyId": STUDY, "limit": "10", "offset": "0"}


@dataclass(frozen=True)
class Deployment:
    """A service running as the documented role, one published job, a caller's headers."""

    base: str
    job: str
    headers: dict[str, str]
    database: str
    role: str


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: postgres.Postgres,
    module_processes: p.Processes,
) -> Deployment:
    """One for the module: each test leaves the grants as it found them."""
    tmp_path = tmp_path_factory.mktemp("roles")
    service_env = p.service_env(tmp_path)
    owner_url = postgres_server.create_database()
    database = owner_url.rsplit("/", 1)[1]
    role = f"svc_{database}"  # roles are the session's server's: one per database
    service_url = postgres_server.create_service_role(owner_url, role)
    owner = {**service_env, "REPORTING_SVC_CATALOG_URL": owner_url}
    (tmp_path / "r.csv").write_bytes(b"a,b\n1,2\n")
    job = p.publish_with_cli(owner, tmp_path / "r.csv")["id"]
    # An hour-old horizon: a listing that moved it would write (no job ended meanwhile,
    # so the counts stay exact).
    postgres_server.psql(f"UPDATE count_horizon SET horizon_us = horizon_us - {HOUR_US}", database)
    env = {
        **service_env,
        "REPORTING_SVC_CATALOG_URL": service_url,
        "REPORTING_SVC_AUDIT_SINK": "postgres",
        "REPORTING_SVC_AUDIT_URL": service_url,
    }
    bearer = p.token_with_cli(env, f"{STUDY}:test:REPORTING_VIEW")
    return Deployment(
        module_processes.serve(env), job, {"Authorization": f"Bearer {bearer}"}, database, role
    )


def test_the_service_lists_downloads_and_is_ready_with_exactly_the_documented_grants(
    deployment: Deployment, postgres_server: postgres.Postgres
) -> None:
    base, headers = deployment.base, deployment.headers

    listing = requests.get(f"{base}{DOWNLOAD_LIST}", params=LISTING, headers=headers, timeout=30)
    download = requests.get(f"{base}{DOWNLOAD}?id={deployment.job}", headers=headers, timeout=30)
    ready = requests.get(f"{base}/readyz", timeout=30)

    assert listing.status_code == 200, listing.text
    assert listing.json()["result"]["totalResults"] == 1
    assert (download.status_code, download.content) == (200, b"a,b\n1,2\n")
    assert ready.status_code == 200, ready.text
    privileges = postgres_server.psql(
        "SELECT table_name || ':' || privilege_type FROM information_schema.role_table_grants"
        f" WHERE grantee = '{deployment.role}' ORDER BY 1",
        deployment.database,
    ).split()
    assert privileges == [
        "alembic_version:SELECT",
        "audit_alembic_version:SELECT",
        "audit_heads:INSERT",
        "audit_heads:SELECT",
        "audit_records:INSERT",
        "audit_records:SELECT",
        "count_horizon:SELECT",
        "job_counts:SELECT",
        "jobs:SELECT",
    ]


def test_the_guides_auditor_reads_the_trail_and_can_change_nothing(
    deployment: Deployment, postgres_server: postgres.Postgres
) -> None:
    auditor = DOCUMENTED_AUDITOR.replace(DOCUMENTED_ROLE, deployment.role)
    privileges = postgres_server.psql(
        "SELECT table_name || ':' || privilege_type FROM information_schema.role_table_grants"
        f" WHERE grantee = '{auditor}' ORDER BY 1",
        deployment.database,
    ).split()
    read = postgres_server.psql(
        "SELECT count(*) FROM audit_records", deployment.database, user=auditor
    )

    assert privileges == [
        "audit_alembic_version:SELECT",
        "audit_heads:SELECT",
        "audit_records:SELECT",
    ]
    assert read.strip().isdigit()  # it may read the trail
    for change in ("DELETE FROM audit_records", "UPDATE jobs SET mode = 'x'"):
        with pytest.raises(subprocess.CalledProcessError) as refused:
            postgres_server.psql(change, deployment.database, user=auditor)
        assert "permission denied" in refused.value.stderr


#: A privilege the deployment guide grants, and how /readyz names its loss.
REVOKED = [
    ("INSERT ON audit_heads", "the audit database's role lacks INSERT ON audit_heads"),
    ("SELECT ON audit_records", "the audit database's role lacks SELECT ON audit_records"),
    ("SELECT ON count_horizon", "the catalog's database role lacks SELECT ON count_horizon"),
    ("SELECT ON job_counts", "the catalog's database role lacks SELECT ON job_counts"),
]


def test_readiness_names_each_privilege_the_service_role_loses_until_it_is_granted_again(
    deployment: Deployment, postgres_server: postgres.Postgres
) -> None:
    base, role, database = deployment.base, deployment.role, deployment.database
    download = f"{base}{DOWNLOAD}?id={deployment.job}"
    listing = f"{base}{DOWNLOAD_LIST}"

    for privilege, named in REVOKED:
        postgres_server.psql(f"REVOKE {privilege} FROM {role}", database)
        ready = requests.get(f"{base}/readyz", timeout=30)
        refused = (
            requests.get(download, headers=deployment.headers, timeout=30)
            if "audit" in privilege
            else requests.get(listing, params=LISTING, headers=deployment.headers, timeout=30)
        )
        postgres_server.psql(f"GRANT {privilege} TO {role}", database)

        assert ready.status_code == 503, privilege
        assert named in ready.json()["errorData"]["details"]
        assert refused.status_code == 503, privilege
        assert requests.get(f"{base}/readyz", timeout=30).status_code == 200


def test_the_guide_shows_the_catalog_grants_that_config_postgres_roles_sql_makes() -> None:
    """The commented statements in the guide's block are the file's, for the documented role."""
    statements = [
        line.replace(':"role"', DOCUMENTED_ROLE)
        for line in ROLES_SQL.read_text().splitlines()
        if line and not line.startswith("--")
    ]
    block = postgres.DEPLOYING.read_text().split(postgres.ROLES_HEADING, 1)[1]
    commented = re.findall(r"^# (.*)$", block.split("```sh\n", 1)[1].split("```", 1)[0], re.M)

    assert ["psql", "-v", f"role={DOCUMENTED_ROLE}", "-f", "config/postgres-roles.sql"] in (
        documented_role_commands()
    )
    assert statements and all(statement in commented for statement in statements)
