"""No request migrates: a catalog behind this version's schema makes the service not ready
(503 in the envelope, readiness saying why) and stays as it is until ``catalog upgrade``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from flask.testing import FlaskClient

from reporting_svc import create_app
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog import schema
from reporting_svc.settings import Settings
from tests.support import DOWNLOAD_LIST, STUDY, error_of


def snapshot(path: Path) -> tuple[list[tuple[str, str]], str]:
    """Every table and index SQLite holds, with its SQL, and the catalog's revision."""
    with sqlite3.connect(path) as connection:
        objects = connection.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return objects, revision


@pytest.fixture
def behind(make_settings: Callable[..., Settings]) -> Settings:
    """A deployment whose catalog an older version left at revision 0002."""
    settings = make_settings(upgraded=False)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    with sa.create_engine(settings.catalog_database_url).begin() as connection:
        alembic_command.upgrade(schema._config(connection), "0002")
    return settings


def list_study(client: FlaskClient, settings: Settings) -> Any:
    """The study's listing, as a caller granted it (a token of its own: the ``token``
    fixture's settings would upgrade the catalog)."""
    bearer = mint_token(settings, "alice", [parse_grant(f"{STUDY}:test:REPORTING_VIEW")])
    query = {"studyId": STUDY, "limit": "10", "offset": "0"}
    return client.get(
        DOWNLOAD_LIST, query_string=query, headers={"Authorization": f"Bearer {bearer}"}
    )


def test_a_listing_on_a_catalog_behind_is_503_not_ready_and_writes_nothing(
    behind: Settings,
) -> None:
    path = behind.var_dir / "catalog.sqlite3"
    before = snapshot(path)
    client = create_app(behind).test_client()

    responses = [list_study(client, behind), client.get("/readyz")]

    for response in responses:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert error_of(response)["errorMessage"] == "Not ready"
        assert "revision 0002, behind this version's" in error_of(response)["details"]
        assert "run `reporting-svc catalog upgrade`" in error_of(response)["details"]
    assert snapshot(path) == before


def test_catalog_upgrade_then_makes_it_serve(
    behind: Settings, command: Callable[..., tuple[int, str, str]]
) -> None:
    client = create_app(behind).test_client()
    assert list_study(client, behind).status_code == 503

    code, out, _ = command("catalog", "upgrade")

    assert (code, out) == (0, f"OK: the catalog is at revision {schema.head()} (was 0002)\n")
    assert list_study(client, behind).status_code == 200
    assert client.get("/readyz").status_code == 200
