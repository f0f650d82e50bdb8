"""The catalog on SQLite and on a live PostgreSQL: same rows, same listing, same schema."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta, timezone
from itertools import product

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from reporting_svc.catalog import Catalog, Selection, queries, schema
from reporting_svc.catalog.queries import micros
from reporting_svc.catalog.tables import metadata
from reporting_svc.storage import JobRecord
from reporting_svc.storage.record import MODES
from tests.support import OTHER_STUDY, STUDY
from tests.test_catalog import record

pytestmark = pytest.mark.integration

NOW = datetime(2025, 7, 1, tzinfo=UTC)
VIEW, UNBLINDED = "REPORTING_VIEW", "REPORTING_UNBLINDED_VIEW"
REPORT_IDS = ["E341BB429E7D44E3989D113A504F3BF8", "0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F", None]
NAMES = ["Subject Data Extract", "Visit Summary", "Query Ageing"]


def upgraded(url: str) -> Catalog:
    """A catalog after its deploy step (``catalog upgrade``)."""
    catalog = Catalog(url)
    catalog.upgrade()
    return catalog


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path) -> Catalog:
    if request.param == "sqlite":
        return upgraded(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    return upgraded(request.getfixturevalue("postgres_url"))


def some_jobs(count: int, seed: int = 7) -> list[JobRecord]:
    """Jobs over two studies and the tenant, every mode, two permissions, some sharing a
    kickoff instant (written with different offsets), some expired or expiring."""
    chosen = random.Random(seed)
    jobs = []
    for number in range(count):
        kickoff = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(minutes=chosen.randrange(200))
        offset = timedelta(hours=chosen.choice([0, 2, -5]))
        expires = chosen.choice([None, None, NOW - timedelta(days=1), NOW + timedelta(days=1)])
        jobs.append(
            record(
                f"{number:032X}",
                studyId=chosen.choice([STUDY, OTHER_STUDY, None]),
                mode=chosen.choice(MODES),
                reportName=chosen.choice(NAMES),
                rptId=chosen.choice(REPORT_IDS),
                requiredPermission=chosen.choice([VIEW, VIEW, UNBLINDED]),
                rptKickoffDatetime=kickoff.astimezone(timezone(offset)).isoformat(),
                expiresAt=None if expires is None else expires.isoformat(),
            )
        )
    return jobs


def brute_force(jobs: list[JobRecord], selection: Selection) -> list[JobRecord]:
    """What the listing must show, computed the slow and obvious way."""
    shown = [
        job
        for job in jobs
        if job.scope == selection.scope
        and job.mode in selection.modes
        and (
            selection.modes[job.mode] is None or job.requiredPermission in selection.modes[job.mode]
        )
        and (job.expires is None or job.expires > NOW)
        and selection.rpt_id in (None, job.rptId)
        and selection.report_name in (None, job.reportName)
    ]
    return sorted(shown, key=lambda job: (-micros(job.kickoff), job.id))


SELECTIONS = [
    Selection(scope, modes, rpt_id, name)
    for scope, modes, (rpt_id, name) in product(
        [STUDY, "tenant"],
        [
            {mode: frozenset({VIEW, UNBLINDED}) for mode in MODES},
            {mode: frozenset({VIEW}) for mode in MODES},
            {"test": frozenset({VIEW}), "active": frozenset({UNBLINDED})},
            {"training": None},
        ],
        [(None, None), (REPORT_IDS[0], None), (None, NAMES[1]), (REPORT_IDS[1], NAMES[0])],
    )
]


def test_every_listing_is_the_brute_force_filter_on_both_backends(catalog: Catalog) -> None:
    jobs = some_jobs(300)
    catalog.add_many(jobs)

    for selection in SELECTIONS:
        expected = brute_force(jobs, selection)
        for limit, offset in [(1000, 0), (7, 0), (7, 14), (5, len(expected) - 2), (5, 10_000)]:
            page = catalog.page(selection, limit, max(offset, 0), NOW)
            assert page.total == len(expected), selection
            assert page.records == expected[max(offset, 0) : max(offset, 0) + limit], selection


def test_a_record_filter_counts_and_pages_like_the_index(catalog: Catalog) -> None:
    jobs = some_jobs(120, seed=3)
    catalog.add_many(jobs)
    selection = Selection(STUDY, dict.fromkeys(MODES))

    def keep(job: JobRecord) -> bool:
        return job.reportName != NAMES[0]

    page = catalog.filtered_page(selection, keep, 10, 5, NOW)

    expected = [job for job in brute_force(jobs, selection) if keep(job)]
    assert page.total == len(expected)
    assert page.records == expected[5:15]


def test_rows_and_listing_agree_between_sqlite_and_postgresql(tmp_path, postgres_url) -> None:
    jobs = some_jobs(200, seed=11)
    embedded, server = upgraded(f"sqlite:///{tmp_path / 'c.sqlite3'}"), upgraded(postgres_url)
    for catalog in (embedded, server):
        catalog.add_many(jobs)

    assert embedded.job_ids() == server.job_ids() == {job.id for job in jobs}
    for selection in SELECTIONS:
        assert embedded.page(selection, 50, 3, NOW) == server.page(selection, 50, 3, NOW)


def test_indexing_twice_keeps_one_row_on_both_backends(catalog: Catalog) -> None:
    first, second = catalog.add(record()), catalog.add(record())
    catalog.add_many([record(), record("B" * 32)])

    assert (first, second) == (True, False)
    assert catalog.job_ids() == {"A" * 32, "B" * 32}


def test_postgresql_revisions_build_the_tables_module_and_upgrade_keeps_rows(
    postgres_url,
) -> None:
    with sa.create_engine(postgres_url).begin() as connection:
        alembic_command.upgrade(schema._config(connection), "head")
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    catalog = Catalog(postgres_url)
    catalog.add(record())

    before, after = Catalog(postgres_url).upgrade()

    assert differences == []
    assert before == after == schema.head()
    assert catalog.job_ids() == {"A" * 32}


def test_an_unreachable_postgresql_is_named_by_the_readiness_check(postgres_server) -> None:
    url = postgres_server.url("no_such_database")

    problem = Catalog(url).check()

    assert problem is not None
    assert problem.startswith("the catalog cannot be read (OperationalError")


def exact_count(catalog: Catalog, selection: Selection, at: datetime) -> int:
    """The total counted row by row, as the listing once did: the reference."""
    with catalog.engines.reading() as connection:
        return queries.count(connection, selection.where(micros(at)))


def assert_totals_exact(catalog: Catalog, at: datetime) -> None:
    assert catalog.count_drift() == []
    for selection in SELECTIONS[::3]:
        assert catalog.page(selection, 1, 0, at).total == exact_count(catalog, selection, at)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_totals_stay_exact_through_every_change_at_any_clock(catalog: Catalog, seed) -> None:
    """Publishing, withdrawing, removing and moving the horizon, listed at instants
    before and after the horizon, around the jobs' expiries."""
    chosen = random.Random(seed)
    pool = some_jobs(120, seed)
    catalog.add_many(pool[:40])
    for _ in range(40):
        at = NOW + timedelta(hours=chosen.randrange(-50, 50))
        action = chosen.choice(["add", "add_many", "withdraw", "remove", "fold", "recount"])
        if action == "add":
            catalog.add(chosen.choice(pool))
        elif action == "add_many":
            catalog.add_many(chosen.sample(pool, 10))
        elif action == "withdraw":
            catalog.withdraw(chosen.choice(pool).id, at)
        elif action == "remove":
            catalog.remove(job.id for job in chosen.sample(pool, 3))
        elif action == "fold":
            catalog.fold(at)
        else:
            catalog.recount(at)
        assert_totals_exact(catalog, NOW + timedelta(hours=chosen.randrange(-50, 50)))


def test_totals_stay_exact_while_writers_and_the_horizon_move_at_once(catalog: Catalog) -> None:
    pool = some_jobs(400, seed=5)
    instants = [NOW + timedelta(hours=hours) for hours in range(-30, 30, 2)]
    failures: list[BaseException] = []

    def run(work) -> None:
        try:
            work()
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    works = [
        lambda: [catalog.add(job) for job in pool[0::2]],
        lambda: catalog.add_many(pool[1::2]),
        lambda: [catalog.withdraw(job.id, instants[n % 30]) for n, job in enumerate(pool[::5])],
        lambda: [catalog.fold(at) for at in instants],
    ]
    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert_totals_exact(catalog, instants[-1])
    assert_totals_exact(catalog, NOW - timedelta(days=3))
