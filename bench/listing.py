"""``python -m bench.listing``: the download list at a million jobs, on SQLite and PostgreSQL.

For each backend: seed the catalog in bulk (bench/catalog_seed.py), start the service
under gunicorn with ``reporting-svc serve`` on that catalog, check every scenario's
``totalResults`` against a count made in Python over the seeded records, then measure
each scenario with wrk at 1, 8 and 64 connections after 2 s of warm-up, and keep the
query plans. Writes bench/results/listing.md and listing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from harness import postgres
from reporting_svc.api import paths
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog import Catalog, Selection
from reporting_svc.settings import load_settings
from reporting_svc.storage import JobRecord
from reporting_svc.storage.record import MODES

from . import load
from .catalog_plans import explain
from .catalog_seed import BIG_MODE, BIG_STUDY, NAMES, TYPICAL_STUDY, records, rpt_id, seed
from .listing_table import CONNECTIONS, markdown
from .measure import load_average
from .reports import local_env
from .servers import Servers
from .table import machine

RESULTS = Path(__file__).resolve().parent / "results"
VIEW = "REPORTING_VIEW"
QUERY_REPEATS = 200
WARM_UP_SECONDS = 2


@dataclass(frozen=True)
class Scenario:
    """One listing: its name, its query, and which target (if any) it is held to."""

    name: str
    query: dict[str, str]
    target: str | None

    @property
    def selection(self) -> Selection:
        """What the default authoriser makes of the bench token for this query."""
        modes = [self.query["mode"]] if "mode" in self.query else list(MODES)
        return Selection(
            self.query["studyId"],
            {mode: frozenset({VIEW}) for mode in modes},
            self.query.get("rptId"),
            self.query.get("reportName"),
        )

    def matches(self, record: JobRecord, now: datetime) -> bool:
        """The brute-force filter: what ``totalResults`` must count at ``now``."""
        selection = self.selection
        return (
            (record.expires is None or record.expires > now)
            and record.studyId == selection.scope
            and record.mode in selection.modes
            and record.requiredPermission == VIEW
            and selection.rpt_id in (None, record.rptId)
            and selection.report_name in (None, record.reportName)
        )


def _query(study: str, **extra: str) -> dict[str, str]:
    return {"studyId": study, "limit": "100", "offset": "0", **extra}


SCENARIOS = [
    Scenario("first page, a study of ~900 runs", _query(TYPICAL_STUDY), "first page"),
    Scenario("first page, the study of 140,000+ runs", _query(BIG_STUDY), "first page"),
    Scenario(
        "deep page: offset 100,000 in a study-mode of 140,000",
        _query(BIG_STUDY, mode=BIG_MODE, offset="100000"),
        "deep page",
    ),
    Scenario("filtered by rptId, the big study", _query(BIG_STUDY, rptId=rpt_id(3)), None),
    Scenario(
        "filtered by rptId and reportName, the big study",
        _query(BIG_STUDY, rptId=rpt_id(3), reportName=NAMES[3]),
        None,
    ),
]


def expected_totals(total: int) -> list[int]:
    """Every scenario's exact count, from the seeded records themselves."""
    counts = [0] * len(SCENARIOS)
    now = datetime.now(UTC)
    for record in records(total):
        for index, scenario in enumerate(SCENARIOS):
            counts[index] += scenario.matches(record, now)
    return counts


def measure_backend(
    servers: Servers, folder: Path, backend: str, url: str, jobs: int, duration: float, log: Any
) -> dict[str, Any]:
    """Seed, serve, check and measure one backend; its figures and plans."""
    catalog = Catalog(url)
    catalog.upgrade()  # the deploy step: the service's workers only check the revision
    started = time.monotonic()
    seed(catalog, jobs)
    log(f"{backend}: seeded {jobs:,} jobs in {time.monotonic() - started:.0f} s")
    env = {**local_env(dict(os.environ), folder / backend), "REPORTING_SVC_CATALOG_URL": url}
    grants = [parse_grant(f"{s}:{','.join(MODES)}:{VIEW}") for s in (BIG_STUDY, TYPICAL_STUDY)]
    token = mint_token(load_settings(env), "bench", grants, ttl=24 * 3600)
    service = servers.service(env, f"listing-{backend}")
    script = load.write_wrk_script(folder)
    results = []
    for scenario in SCENARIOS:
        target = f"{service.url}{paths.DOWNLOAD_LIST}?{urlencode(scenario.query)}"
        answer = _fetch(target, token)
        # Every worker opens its database connection and reads the index pages it needs
        # before the figures start: the steady state, as a deployment serves it.
        load.run_wrk(target, connections=8, seconds=WARM_UP_SECONDS, script=script, token=token)
        samples = {
            connections: asdict(
                load.run_wrk(
                    target, connections=connections, seconds=duration, script=script, token=token
                )
            )
            for connections in CONNECTIONS
        }
        limit, offset = int(scenario.query["limit"]), int(scenario.query["offset"])
        results.append(
            {
                "scenario": scenario.name,
                "target": scenario.target,
                "totalResults": answer["totalResults"],
                "count": answer["count"],
                "samples": samples,
                "plans": explain(catalog, scenario.selection, limit, offset),
            }
        )
        results[-1]["query_ms"] = time_queries(catalog, scenario.selection, limit, offset)
        log(f"{backend}: {scenario.name}: {_summary(samples)}")
    return {"backend": backend, "scenarios": results}


def time_queries(
    catalog: Catalog, selection: Selection, limit: int, offset: int
) -> dict[str, float]:
    """The database's part alone: ``Catalog.page`` (count and page in one snapshot) called
    in this process, one at a time; p50 and p99 in milliseconds."""
    times = []
    for _ in range(QUERY_REPEATS):
        started = time.perf_counter()
        catalog.page(selection, limit, offset, datetime.now(UTC))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50": times[len(times) // 2], "p99": times[int(0.99 * (len(times) - 1))]}


def _fetch(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        result: dict[str, Any] = json.load(response)["result"]
    return result


def _summary(samples: dict[int, dict[str, Any]]) -> str:
    one = samples[1]
    rates = ", ".join(
        f"{n}: {samples[n]['requests'] / samples[n]['seconds']:.0f}/s" for n in CONNECTIONS
    )
    return f"p50 {one['p50_ms']:.1f} ms, p99 {one['p99_ms']:.1f} ms; {rates}"


def run(jobs: int, duration: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Both backends, every process stopped at the end (also on error or Ctrl-C)."""
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="reporting-svc-bench-listing-") as temp:
        folder = Path(temp)
        servers = Servers(folder)
        server = postgres.start(durable=True)
        try:
            backends = {
                "SQLite (embedded)": f"sqlite:///{folder / 'catalog.sqlite3'}",
                "PostgreSQL 15": server.create_database(),
            }
            measured = [
                measure_backend(servers, folder, name, url, jobs, duration, log)
                for name, url in backends.items()
            ]
        finally:
            servers.stop_all()
            server.stop()
    totals = expected_totals(jobs)
    return {
        "jobs": jobs,
        "duration": duration,
        "load_before": load_before,
        "load_after": load_average(),
        "expected_totals": dict(zip([s.name for s in SCENARIOS], totals, strict=True)),
        "backends": measured,
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.listing", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="default %(default)s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where listing.* go")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        raw = run(args.jobs, args.duration, log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("interrupted; every server was stopped", file=sys.stderr)
        return 130
    info = machine()
    text = markdown(raw, info)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "listing.md").write_text(text)
    (args.output / "listing.json").write_text(json.dumps({"machine": info, **raw}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
