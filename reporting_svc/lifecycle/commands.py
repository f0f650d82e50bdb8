"""``reporting-svc withdraw`` and ``reporting-svc purge``: what operators run (docs/api.md §6)."""

from __future__ import annotations

import argparse
import getpass
import time
from datetime import UTC, datetime, timedelta

from ..audit import AuditTrail, make_audit_trail
from ..catalog import Catalog, make_catalog
from ..settings import MAX_RETENTION_DAYS, Settings
from ..storage import Store, make_store
from .purge import Outcome, Purger
from .records import Operator
from .withdraw import withdraw_job

# A moment more than a store remembers, so a download that read "not withdrawn" just
# before has opened its file before the file goes.
SETTLE_MARGIN_SECONDS = 1.0
PURGED_FILE = {
    Outcome.PURGED: "OK: its file is purged",
    Outcome.FINISHED: "OK: its file is purged (by an earlier purge)",
    Outcome.HELD: "its file is being purged by another purge, which claimed it moments ago;"
    " if it stays, the next 'reporting-svc purge --withdrawn' finishes it",
}


def add_lifecycle_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``withdraw`` and ``purge`` to the top-level commands."""
    withdraw = commands.add_parser("withdraw", help="withdraw a report issued in error")
    withdraw.add_argument("job_id", metavar="ID")
    withdraw.add_argument("--reason", required=True, help="why; every 410 for the job says it")
    withdraw.add_argument("--by", required=True, metavar="OPERATOR", help="who withdraws it")
    withdraw.add_argument(
        "--delete-content",
        action="store_true",
        help="purge its file too, once every host refuses it",
    )
    withdraw.set_defaults(run=withdraw_command)

    purge = commands.add_parser(
        "purge", help="delete the files of expired jobs, keeping their records"
    )
    purge.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    purge.add_argument(
        "--older-than",
        type=_days,
        default=timedelta(0),
        metavar="DAYS",
        help="only jobs expired (or withdrawn) at least DAYS ago (default 0)",
    )
    purge.add_argument("--withdrawn", action="store_true", help="purge withdrawn jobs too")
    purge.add_argument(
        "--by", default=getpass.getuser(), metavar="OPERATOR", help="default: the login name"
    )
    purge.set_defaults(run=purge_command)


def withdraw_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when this call withdrew the job, 1 when it was withdrawn already."""
    store, catalog, audit = make_store(settings), make_catalog(settings), make_audit_trail(settings)
    operator = Operator(args.by, f"reporting-svc withdraw; reason: {args.reason}")
    outcome = withdraw_job(
        store, catalog, audit, args.job_id, reason=args.reason, operator=operator, now=_now()
    )
    entry = outcome.withdrawal
    if outcome.new:
        print(f"OK: job {outcome.record.id} withdrawn at {entry.withdrawnAt}")
    else:
        print(
            f"job {outcome.record.id} was withdrawn already, at {entry.withdrawnAt}"
            f" by {entry.by}: {entry.reason}"
        )
    if args.delete_content:
        settle = store.remembers_for + SETTLE_MARGIN_SECONDS if store.remembers_for else 0
        if settle:
            print(f"waiting {settle:g} s for every host to refuse the job before its file goes")
            time.sleep(settle)
        purged = _purger(settings, store, catalog, audit, operator).job(outcome.record)
        print(PURGED_FILE[purged])
    return 0 if outcome.new else 1


def purge_command(settings: Settings, args: argparse.Namespace) -> int:
    store, catalog, audit = make_store(settings), make_catalog(settings), make_audit_trail(settings)
    purger = _purger(settings, store, catalog, audit, Operator(args.by, "reporting-svc purge"))
    summary = purger.run(older_than=args.older_than, withdrawn=args.withdrawn, dry_run=args.dry_run)
    if args.dry_run:
        for job_id in sorted(summary.purged):
            print(f"would purge {job_id}")
    print(summary.line())
    return 0


def _now() -> datetime:
    return datetime.now(UTC)


def _purger(
    settings: Settings, store: Store, catalog: Catalog, audit: AuditTrail, operator: Operator
) -> Purger:
    lease = timedelta(seconds=settings.purge_lease_seconds)
    return Purger(store, catalog, audit, operator, _now(), lease)


def _days(text: str) -> timedelta:
    try:
        days = float(text)
    except ValueError:
        days = -1
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of days from 0 to {MAX_RETENTION_DAYS}"
        )
    return timedelta(days=days)
