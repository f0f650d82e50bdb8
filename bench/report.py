"""From raw measurements to the table: medians over rounds, ratios to anchors, the targets.

Medians, not means: on a shared 2-core machine one disturbed round must not move a figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from .reports import GIB, MIB
from .run import FIRST_BYTE, Measurement
from .targets import (
    ANCHOR_OF,
    ORDER,
    PROXY,
    REDIRECT,
    S3_DIRECT,
    S3_X_ACCEL,
    STATIC,
    STREAM,
    X_ACCEL,
)

LOCAL_MEMORY_LIMIT = 64.0
PROXY_MEMORY_LIMIT = 80.0
# "Does not grow with file size": the largest download's peak within this of the 1 KiB one.
GROWTH_TOLERANCE_MIB = 8.0
# Issue 12: every S3 mode's first byte within this of a direct GET's (medians).
FIRST_BYTE_MARGIN_MS = 2.0


@dataclass(frozen=True)
class Row:
    """The medians of one target on one workload."""

    workload: str
    size: int
    connections: int
    target: str
    requests_per_second: float
    mib_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    worker_peak_mib: float | None
    gunicorn_cpu_per_gib: float | None
    nginx_cpu_per_gib: float | None


def _median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarise(measurements: list[Measurement]) -> list[Row]:
    """One row per (workload, target), in run order, with medians over the rounds."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for measurement in measurements:
        groups.setdefault((measurement.workload, measurement.target), []).append(measurement)
    rows = []
    for (workload, target), runs in groups.items():
        first = runs[0]
        redirect_only = target == REDIRECT and first.connections > 0
        rows.append(
            Row(
                workload=workload,
                size=first.size,
                connections=first.connections,
                target=target,
                requests_per_second=_median(r.requests / r.seconds for r in runs) or 0.0,
                mib_per_second=_median(r.bytes / MIB / r.seconds for r in runs) or 0.0,
                p50_ms=_median(r.p50_ms for r in runs),
                p99_ms=_median(r.p99_ms for r in runs),
                errors=sum(r.errors for r in runs),
                worker_peak_mib=_median(max(r.worker_peak_mib, default=None) for r in runs),
                gunicorn_cpu_per_gib=None
                if redirect_only
                else _median(_per_gib(r.gunicorn_cpu_s, r.bytes) for r in runs),
                nginx_cpu_per_gib=_median(_per_gib(r.nginx_cpu_s, r.bytes) for r in runs),
            )
        )
    order = {name: index for index, name in enumerate(ORDER)}
    workloads = list(dict.fromkeys(row.workload for row in rows))
    return sorted(rows, key=lambda row: (workloads.index(row.workload), order[row.target]))


def _per_gib(cpu: float | None, size: int) -> float | None:
    return cpu / (size / GIB) if cpu is not None and size else None


def find(rows: list[Row], workload: str, target: str) -> Row | None:
    """The row of ``target`` on ``workload``, if it was measured."""
    return next((r for r in rows if r.workload == workload and r.target == target), None)


def ratio(value: float | None, anchor: float | None) -> float | None:
    """``value / anchor``, or None when either is missing or the anchor is zero."""
    if value is None or not anchor:
        return None
    return value / anchor


@dataclass(frozen=True)
class Verdict:
    """One target of the issue: what it asks, what was measured, met or not."""

    goal: str
    measured: str
    met: bool | None


def _throughput(row: Row) -> float:
    """Requests/s for wrk workloads, MiB/s for one download."""
    return row.requests_per_second if row.connections else row.mib_per_second


def _compare(rows: list[Row], workload: str, target: str, anchor: str, goal: float) -> Verdict:
    scenario, base = find(rows, workload, target), find(rows, workload, anchor)
    text = f"{workload}: {target} ≥ {goal} x {anchor}"
    if scenario is None or base is None:
        return Verdict(text, "not measured", None)
    value = ratio(_throughput(scenario), _throughput(base))
    unit = "req/s" if scenario.connections else "MiB/s"
    measured = f"{_throughput(scenario):,.1f} vs {_throughput(base):,.1f} {unit} = {value or 0:.2f}"
    return Verdict(text, measured, value is not None and value >= goal)


def _p99(rows: list[Row], workload: str) -> Verdict:
    scenario, base = find(rows, workload, STREAM), find(rows, workload, ANCHOR_OF[STREAM])
    text = f"{workload}: {STREAM} p99 ≤ 1.5 x {ANCHOR_OF[STREAM]}"
    if scenario is None or base is None:
        return Verdict(text, "not measured", None)
    value = ratio(scenario.p99_ms, base.p99_ms)
    measured = f"{scenario.p99_ms or 0:.2f} vs {base.p99_ms or 0:.2f} ms = {value or 0:.2f}"
    return Verdict(text, measured, value is not None and value <= 1.5)


def _memory(rows: list[Row], target: str, limit: float) -> Verdict:
    singles = [r for r in rows if r.target == target and _is_download(r)]
    small = find(rows, "1 KiB c1", target)
    if not singles or small is None:
        return Verdict(f"{target}: worker peak < {limit:.0f} MiB", "not measured", None)
    largest = max(singles, key=lambda r: r.size)
    peak, base = largest.worker_peak_mib or 0.0, small.worker_peak_mib or 0.0
    asked = "1 GiB" if largest.size >= GIB else f"1 GiB (measured {largest.workload})"
    text = f"{target}: worker peak < {limit:.0f} MiB serving {asked}, flat with size"
    measured = f"{peak:.1f} MiB ({base:.1f} MiB at 1 KiB c1, +{peak - base:.1f})"
    met = peak < limit and peak - base <= GROWTH_TOLERANCE_MIB
    return Verdict(text, measured, met if largest.size >= GIB or not met else None)


def _is_download(row: Row) -> bool:
    """A row of whole single downloads (neither wrk nor time to the first byte)."""
    return not row.connections and not row.workload.endswith(FIRST_BYTE)


def _first_byte(rows: list[Row], target: str) -> Verdict:
    workload = next((r.workload for r in rows if r.workload.endswith(FIRST_BYTE)), "")
    scenario, base = find(rows, workload, target), find(rows, workload, S3_DIRECT)
    text = f"{workload or FIRST_BYTE}: {target} p50 ≤ {S3_DIRECT} p50 + {FIRST_BYTE_MARGIN_MS:g} ms"
    if scenario is None or base is None or scenario.p50_ms is None or base.p50_ms is None:
        return Verdict(text, "not measured", None)
    gap = scenario.p50_ms - base.p50_ms
    measured = f"{scenario.p50_ms:.2f} vs {base.p50_ms:.2f} ms = +{gap:.2f} ms"
    return Verdict(text, measured, gap <= FIRST_BYTE_MARGIN_MS)


def verdicts(rows: list[Row]) -> list[Verdict]:
    """Every target of the issue, in its order."""
    large = max((r.size for r in rows if _is_download(r) and r.size < GIB), default=0)
    large_name = next((r.workload for r in rows if r.size == large and _is_download(r)), "")
    return [
        _compare(rows, "1 KiB c64", STREAM, ANCHOR_OF[STREAM], 0.8),
        _p99(rows, "1 KiB c64"),
        _compare(rows, "1 MiB c64", STREAM, ANCHOR_OF[STREAM], 0.9),
        _compare(rows, "1 MiB c64", X_ACCEL, ANCHOR_OF[X_ACCEL], 0.9),
        _compare(rows, large_name, STREAM, STATIC, 0.9),
        _compare(rows, large_name, X_ACCEL, STATIC, 0.9),
        _compare(rows, large_name, PROXY, S3_DIRECT, 0.85),
        _compare(rows, large_name, S3_X_ACCEL, S3_DIRECT, 0.95),
        _compare(rows, "1 GiB single", S3_X_ACCEL, S3_DIRECT, 0.95),
        *(_first_byte(rows, target) for target in (S3_X_ACCEL, PROXY, REDIRECT)),
        _memory(rows, STREAM, LOCAL_MEMORY_LIMIT),
        _memory(rows, X_ACCEL, LOCAL_MEMORY_LIMIT),
        _memory(rows, PROXY, PROXY_MEMORY_LIMIT),
    ]
