"""A catalog of a million jobs, written straight into its table in bulk.

The benchmark seeds rows directly (publishing a million files would measure the disk,
not the listing); each row is what ``catalog.add`` would write for its record. 1,000
studies, 3 modes, 20 report names (each its own rptId); one study holds a study-mode of
140,000 runs (112,000 of them listed to a plain viewer), for the deep page at offset
100,000. One run in ten needs an unblinded permission. One run in eight has expired
(30 days after its kickoff, in 2024) and one in eight expires in ten years, so listings
skip expired runs and the counts carry expiring ones, as under a retention setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice

import sqlalchemy as sa

from reporting_svc.catalog import Catalog
from reporting_svc.catalog.queries import row_of
from reporting_svc.catalog.tables import jobs
from reporting_svc.storage import JobRecord
from reporting_svc.storage.record import MODES

STUDIES = 1000
NAMES = [f"Report {number:02d}" for number in range(20)]
BIG_STUDY = f"{0:032X}"
BIG_MODE = "active"
BIG_RUNS = 140_000
TYPICAL_STUDY = f"{7:032X}"
UNBLINDED = "REPORTING_UNBLINDED_VIEW"
BATCH = 20_000
_START = datetime(2024, 1, 1, tzinfo=UTC)


def rpt_id(name_index: int) -> str:
    return f"E341BB429E7D44E3989D113A{name_index:08X}"


def records(total: int) -> Iterator[JobRecord]:
    """The jobs in kickoff order (as they are published): every ``stride``-th goes to the
    big study-mode (``BIG_RUNS`` of them at a million), the rest round the other studies."""
    stride = max(1, total // BIG_RUNS)
    for number in range(total):
        big = number % stride == 0 and number // stride < BIG_RUNS
        study = BIG_STUDY if big else f"{1 + number % (STUDIES - 1):032X}"
        mode = BIG_MODE if big else MODES[(number // STUDIES) % len(MODES)]
        # Names and permissions cycle within the big study-mode as everywhere else.
        sequence = number // stride if big else number
        name = sequence % len(NAMES)
        kickoff = (_START + timedelta(seconds=number)).isoformat().replace("+00:00", "Z")
        yield JobRecord(
            id=f"{0xA0000000 + number:032X}",
            studyId=study,
            mode=mode,
            reportName=NAMES[name],
            rptKickoffDatetime=kickoff,
            rptFormat="CSV",
            status="COMPLETED",
            fileName=f"{NAMES[name].lower().replace(' ', '-')}.csv",
            contentType="text/csv",
            size=48_213,
            sha256=f"{number:064x}",
            completedAt=kickoff,
            requiredPermission=UNBLINDED if sequence % 10 == 9 else "REPORTING_VIEW",
            rptId=rpt_id(name),
            expiresAt=_expiry(sequence, kickoff),
        )


def _expiry(sequence: int, kickoff: str) -> str | None:
    retained = {3: timedelta(days=30), 5: timedelta(days=3653)}.get(sequence % 8)
    if retained is None:
        return None
    return (datetime.fromisoformat(kickoff) + retained).isoformat().replace("+00:00", "Z")


def seed(catalog: Catalog, total: int) -> None:
    """Write ``total`` rows in large transactions, then refresh the planner's statistics
    (and, on PostgreSQL, the visibility map that index-only scans need: autovacuum's job
    in a deployment)."""
    engine = catalog.engines.get()
    rows = (row_of(record) for record in records(total))
    while batch := list(islice(rows, BATCH)):
        with catalog.engines.writing() as connection:
            connection.execute(sa.insert(jobs), batch)
    catalog.recount(datetime.now(UTC))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE jobs")
    else:
        # Outside any transaction (the driver's autocommit), as a checkpoint must be.
        raw = engine.raw_connection()
        try:
            for statement in ("ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"):
                raw.cursor().execute(statement)
        finally:
            raw.close()
