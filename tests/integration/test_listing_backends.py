"""The download list on SQLite and on a live PostgreSQL: every page of 250 runs, and pages
that stay consistent while another process publishes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from reporting_svc import create_app
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog import Catalog, make_catalog
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings, load_settings
from reporting_svc.storage import JobRecord, make_store
from tests.support import DOWNLOAD_LIST, SECRET, STUDY
from tests.test_catalog import record

pytestmark = pytest.mark.integration

RUNS = 250
LIMITS = [1, 2, 3, 7, 10, 50, 100, 249, 250, 251, 1000]
OFFSETS = [0, 1, 2, 3, 9, 10, 49, 50, 99, 100, 150, 248, 249, 250, 251, 1000, 2**31 - 1]
BASE = datetime(2025, 6, 1, tzinfo=UTC)


def overrides(folder: Path, catalog_url: str) -> dict[str, Any]:
    return {
        "local_root": str(folder / "reports"),
        "var_dir": str(folder / "var"),
        "jwt_secret": SECRET,
        "audit_fsync": False,
        "catalog_url": catalog_url,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    Catalog(url).upgrade()  # the deploy step: no request migrates
    return load_settings({}, overrides(tmp_path, url))


def kickoff(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def newest_first(jobs: list[JobRecord]) -> list[str]:
    return [job.id for job in sorted(jobs, key=lambda job: (-job.kickoff.timestamp(), job.id))]


def page_of(client: FlaskClient, token: str, limit: int, offset: int) -> dict[str, Any]:
    response = client.get(
        DOWNLOAD_LIST,
        query_string={"studyId": STUDY, "limit": str(limit), "offset": str(offset)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.get_json()
    result: dict[str, Any] = response.get_json()["result"]
    return result


def check_page(result: dict[str, Any], order: list[str], limit: int, offset: int) -> None:
    """The page is the slice of ``order`` it names, and says so consistently."""
    listed = [run["downloadId"] for run in result["reportRunStatus"]]
    assert listed == order[offset : offset + limit], (limit, offset)
    assert result["totalResults"] == len(order)
    assert result["count"] == len(listed)
    assert result["hasMore"] == ("true" if offset + len(listed) < len(order) else "false")
    assert (result["limit"], result["offset"]) == (limit, offset)


def test_every_page_of_250_runs_is_the_right_slice(settings: Settings) -> None:
    app = create_app(settings)
    jobs = [record(f"{n:032X}", rptKickoffDatetime=kickoff(n // 3)) for n in range(RUNS)]
    app.extensions["reporting_svc"].catalog.add_many(jobs)
    client = app.test_client()
    token = mint_token(settings, "alice", [parse_grant(f"{STUDY}:test:REPORTING_VIEW")])
    order = newest_first(jobs)

    for limit, offset in product(LIMITS, OFFSETS):
        check_page(page_of(client, token, limit, offset), order, limit, offset)


def publish_newer(settings: dict[str, Any], job_ids: list[str], first_minute: int) -> None:
    """Another process: publish each job, newer than every earlier one, one after another."""
    loaded = load_settings({}, settings)
    store, catalog = make_store(loaded), make_catalog(loaded)
    source = Path(loaded.var_dir) / "publisher.csv"
    source.write_bytes(b"a,b\n")
    for number, job_id in enumerate(job_ids):
        publish_report(
            store,
            source,
            report_name="Subject Data Extract",
            mode="test",
            study_id=STUDY,
            job_id=job_id,
            kickoff=kickoff(first_minute + number),
            catalog=catalog,
        )


def test_pages_stay_consistent_while_another_process_publishes(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(settings)
    initial = [record(f"{n:032X}", rptKickoffDatetime=kickoff(n)) for n in range(60)]
    app.extensions["reporting_svc"].catalog.add_many(initial)
    client = app.test_client()
    token = mint_token(settings, "alice", [parse_grant(f"{STUDY}:test:REPORTING_VIEW")])
    published = [f"{n:032X}" for n in range(1000, 1040)]
    publisher = multiprocessing.get_context("spawn").Process(
        target=publish_newer,
        args=(overrides(tmp_path, settings.catalog_database_url), published, 1000),
    )
    totals = set()

    publisher.start()
    try:
        while publisher.is_alive():
            for limit, offset in [(10, 0), (7, 5), (25, 30), (10, 90)]:
                result = page_of(client, token, limit, offset)
                seen = result["totalResults"] - len(initial)
                order = list(reversed(published[:seen])) + newest_first(initial)
                check_page(result, order, limit, offset)
                totals.add(result["totalResults"])
    finally:
        publisher.join(timeout=60)

    assert publisher.exitcode == 0
    final = page_of(client, token, 1000, 0)
    check_page(final, list(reversed(published)) + newest_first(initial), 1000, 0)
    assert totals <= set(range(len(initial), len(initial) + len(published) + 1))
    assert any(len(initial) < total < len(initial) + len(published) for total in totals)
