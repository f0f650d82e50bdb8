"""The download list benchmark's closing table: figures, targets met or not, query plans."""

from __future__ import annotations

from typing import Any

CONNECTIONS = (1, 8, 64)
TARGETS = {"first page": 20.0, "deep page": 100.0}


def markdown(raw: dict[str, Any], info: dict[str, str]) -> str:
    """The whole of listing.md from the raw figures of one run."""
    lines = [
        "# Download list at a million jobs",
        "",
        f"{raw['jobs']:,} jobs in the catalog (1,000 studies, 3 modes, 20 report names; one "
        "study-mode of 140,000 runs; one run in eight expired, one in eight expiring), "
        "seeded in bulk straight into the catalog's table "
        "(`bench/catalog_seed.py`); the queries are the service's own, through the live "
        "endpoint: `reporting-svc serve` (gunicorn, config/gunicorn.conf.py, default audit "
        "settings: every listing's `list` record is fsynced before the answer), wrk "
        f"{raw['duration']:g} s per run, limit 100. {info['date']}, {info['nproc']} cores "
        f"({info['cpu']}), load average {raw['load_before']} before the run, "
        f"{raw['load_after']} after; client, service and database share the cores.",
        "",
        'p50 and p99 are of the live endpoint at one connection; "query" is the database\'s '
        "part alone (`Catalog.page`: the exact count and the page, in one snapshot, called "
        "in the benchmark's process 200 times).",
        "",
        "| backend | scenario | totalResults (exact?) | p50 ms | p99 ms | query p50 / p99 ms "
        "| req/s at 8 | req/s at 64 | p99 ms at 64 | target (p99 at 1) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend in raw["backends"]:
        for result in backend["scenarios"]:
            lines.append(_row(backend["backend"], result, raw["expected_totals"]))
    lines += ["", "## Query plans", ""]
    for backend in raw["backends"]:
        for result in backend["scenarios"]:
            lines += [f"### {backend['backend']}: {result['scenario']}", ""]
            for name, plan in result["plans"].items():
                lines += [f"{name}:", "", "```", plan, "```", ""]
    return "\n".join(lines)


def _row(backend: str, result: dict[str, Any], expected: dict[str, int]) -> str:
    samples = {int(key): value for key, value in result["samples"].items()}
    one, many = samples[1], samples[64]
    exact = result["totalResults"] == expected[result["scenario"]]
    target = result["target"]
    verdict = "—"
    if target is not None:
        limit = TARGETS[target]
        verdict = f"≤ {limit:g} ms: {'met' if one['p99_ms'] <= limit else 'NOT met'}"
    errors = sum(sample["errors"] for sample in samples.values())
    rates = [f"{samples[n]['requests'] / samples[n]['seconds']:.0f}" for n in (8, 64)]
    query = result["query_ms"]
    cells = [
        backend,
        result["scenario"],
        f"{result['totalResults']:,} ({'exact' if exact else 'WRONG'})",
        f"{one['p50_ms']:.1f}",
        f"{one['p99_ms']:.1f}",
        f"{query['p50']:.1f} / {query['p99']:.1f}",
        *rates,
        f"{many['p99_ms']:.1f}",
        verdict + (f" ({errors} errors)" if errors else ""),
    ]
    return "| " + " | ".join(cells) + " |"
