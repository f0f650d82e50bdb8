"""``reporting-svc catalog upgrade``, ``rebuild``, ``check`` and ``fold``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import sqlalchemy as sa

from ..settings import Settings
from ..storage import make_store
from . import make_catalog
from .catalog import Catalog
from .counts import Group
from .rebuild import compare, rebuild
from .tables import GROUP


def add_catalog_commands(parser: argparse.ArgumentParser) -> None:
    """Give the ``catalog`` subcommand its own four."""
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    upgrade = commands.add_parser("upgrade", help="bring the schema to this version's; rows stay")
    upgrade.set_defaults(run=upgrade_command)
    again = commands.add_parser(
        "rebuild", help="index the store's jobs, withdrawals and purges; drop jobs it lacks"
    )
    again.set_defaults(run=rebuild_command)
    check = commands.add_parser("check", help="list jobs in the store or the catalog only")
    check.set_defaults(run=check_command)
    fold = commands.add_parser(
        "fold", help="move the listing counts' horizon to now (run it from cron, e.g. hourly)"
    )
    fold.set_defaults(run=fold_command)


def upgrade_command(settings: Settings, args: argparse.Namespace) -> int:
    before, after = Catalog(settings.catalog_database_url).upgrade()
    if before == after:
        print(f"OK: the catalog is at revision {after} already")
    else:
        print(f"OK: the catalog is at revision {after} (was {before or 'empty'})")
    return 0


def upgrade_host_catalog(settings: Settings) -> None:
    """The deploy step of ``serve`` (before gunicorn starts), ``publish`` and ``catalog
    rebuild``: an SQLite catalog is the host's own file, so the commands that start the
    host, put a job in it or make it again from the store create or upgrade it; a
    PostgreSQL one is its owner's (``catalog upgrade``, docs/deploying.md)."""
    if sa.make_url(settings.catalog_database_url).get_backend_name() == "sqlite":
        Catalog(settings.catalog_database_url).upgrade()


def rebuild_command(settings: Settings, args: argparse.Namespace) -> int:
    upgrade_host_catalog(settings)
    catalog = Catalog(settings.catalog_database_url)  # no statement bound: it reads every job
    difference = rebuild(make_store(settings), catalog)
    print(
        f"OK: {len(difference.only_in_store)} job(s) indexed, "
        f"{len(difference.only_in_catalog)} no longer in the store removed, "
        f"{len(difference.withdrawals_unmarked)} withdrawal(s) and "
        f"{len(difference.purges_unmarked)} purge(s) restored, "
        f"{len(difference.miscounted)} listing count(s) mended"
    )
    return 0


def check_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 only when the store and the catalog hold the same jobs."""
    difference = compare(make_store(settings), Catalog(settings.catalog_database_url))
    for job_id in difference.only_in_store:
        print(f"in the store, not in the catalog: {job_id}")
    for job_id in difference.only_in_catalog:
        print(f"in the catalog, not in the store: {job_id}")
    for job_id in difference.withdrawals_unmarked:
        print(f"withdrawn in the store, not in the catalog: {job_id}")
    for job_id in difference.purges_unmarked:
        print(f"purged in the store, not in the catalog: {job_id}")
    for group in difference.miscounted:
        print(f"listing count differs from the catalog's jobs: {describe(group)}")
    if difference:
        print("run `reporting-svc catalog rebuild` to make the catalog match the store")
        return 1
    print("OK: the store and the catalog hold the same jobs")
    return 0


def fold_command(settings: Settings, args: argparse.Namespace) -> int:
    """Move the horizon, so a listing counts one by one only the jobs that ended since."""
    now = datetime.now(UTC)
    make_catalog(settings).fold(now)
    print(f"OK: the listing counts' horizon is {now.isoformat()}")
    return 0


def describe(group: Group) -> str:
    """A listing group as ``scope=S mode=M ...``; an absent ``rptId`` shows as ``-``."""
    return " ".join(f"{name}={value or '-'}" for name, value in zip(GROUP, group, strict=True))
