"""Rendering: the Markdown of bench/results/latest.md and its header about the machine."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from .report import Row, Verdict, find, ratio
from .targets import ANCHOR_OF, REDIRECT, STATIC

PACKAGES = ("reporting-svc", "Flask", "Werkzeug", "gunicorn", "boto3", "moto")


def _version_of(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "missing"
    text = (result.stdout + result.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine() -> dict[str, str]:
    """nproc, CPU model, kernel and the versions of everything on the measured path."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    versions = {name: _installed(name) for name in PACKAGES}
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model.group(1) if model else "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _version_of(["nginx", "-v"]).removeprefix("nginx version: "),
        "wrk": _version_of(["wrk", "--version"]).split(" [")[0],
        "curl": _version_of(["curl", "--version"]).split(" (")[0],
        **versions,
    }


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _row(rows: list[Row], row: Row) -> str:
    anchor_name = ANCHOR_OF.get(row.target)
    anchor = find(rows, row.workload, anchor_name) if anchor_name else None
    static = find(rows, row.workload, STATIC)
    wrk = row.connections > 0
    speed, anchor_speed = (
        (row.requests_per_second, anchor.requests_per_second if anchor else None)
        if wrk
        else (row.mib_per_second, anchor.mib_per_second if anchor else None)
    )
    static_speed = (
        (static.requests_per_second if wrk else static.mib_per_second) if static else None
    )
    name = f"{row.target} (302s)" if row.target == REDIRECT and wrk else row.target
    cells = [
        row.workload,
        f"**{name}**" if anchor_name else name,
        _number(row.requests_per_second),
        _number(row.mib_per_second),
        _number(row.p50_ms, 2),
        _number(row.p99_ms, 2),
        str(row.errors),
        _number(row.worker_peak_mib),
        _number(row.gunicorn_cpu_per_gib, 2),
        _number(row.nginx_cpu_per_gib, 2),
        anchor_name or "",
        _times(ratio(speed, anchor_speed)),
        _times(ratio(row.p99_ms, anchor.p99_ms if anchor else None)),
        "" if row.target == STATIC else _times(ratio(speed, static_speed)),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| workload | target | req/s | MiB/s | p50 ms | p99 ms | errors | worker peak MiB "
    "| gunicorn CPU s/GiB | nginx CPU s/GiB | anchor | x anchor speed | x anchor p99 "
    "| x static speed |\n|" + "---|" * 14
)


def figures_table(rows: list[Row]) -> str:
    """Every row; speed is req/s for wrk workloads and MiB/s for single downloads."""
    return "\n".join([HEADER, *(_row(rows, row) for row in rows)])


def targets_table(results: list[Verdict]) -> str:
    """The issue's targets with met / not met / not measured."""
    lines = ["| target | measured | result |", "|---|---|---|"]
    for verdict in results:
        state = {True: "met", False: "**not met**", None: "not measured"}[verdict.met]
        lines.append(f"| {verdict.goal} | {verdict.measured} | {state} |")
    return "\n".join(lines)


def markdown(
    rows: list[Row], results: list[Verdict], info: dict[str, str], notes: list[str]
) -> str:
    """The whole of latest.md."""
    versions = ", ".join(f"{key} {value}" for key, value in info.items() if key not in {"date"})
    return "\n\n".join(
        [
            "# reporting-svc benchmark",
            f"Run {info['date']} on {info['nproc']} cores ({info['cpu']}). Versions: {versions}.",
            "\n".join(f"- {note}" for note in notes),
            "## Targets",
            targets_table(results),
            "## Figures (medians over rounds)",
            figures_table(rows),
            "",
        ]
    )
