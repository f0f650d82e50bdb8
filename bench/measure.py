"""Server-side figures from /proc: CPU time of a process tree and its workers' peak memory.

The client cannot see what the server spent, so these are read around each measurement:
utime+stime of the gunicorn master and its workers (the delta over the run), and each
worker's VmHWM after resetting it, so the peak belongs to this measurement alone.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from harness.processes import PROC, children

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process (all its threads)."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12).
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a master and its direct children, as they are now."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def reset_peak_memory(pid: int) -> None:
    """Reset VmHWM of each child to its current RSS (``clear_refs`` 5, Linux 4.0+)."""
    for child in children(pid):
        with contextlib.suppress(OSError):
            (PROC / str(child) / "clear_refs").write_text("5")


def peak_memory_mib(pid: int) -> list[float]:
    """VmHWM of each child of ``pid`` in MiB: the peak resident memory of each worker."""
    peaks = []
    for child in children(pid):
        try:
            status = (PROC / str(child) / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return peaks


@dataclass
class ServerProbe:
    """Brackets one measurement of the gunicorn (or nginx) master ``pid``."""

    pid: int
    cpu_before: float = 0.0

    def start(self) -> None:
        """Reset the workers' peaks and remember the tree's CPU time."""
        reset_peak_memory(self.pid)
        self.cpu_before = tree_cpu_seconds(self.pid)

    def finish(self) -> tuple[float, list[float]]:
        """CPU seconds spent since ``start`` and each worker's peak resident memory (MiB)."""
        return tree_cpu_seconds(self.pid) - self.cpu_before, peak_memory_mib(self.pid)


def load_average() -> str:
    """/proc/loadavg's first three figures, to show whether the machine was shared."""
    return " ".join((PROC / "loadavg").read_text().split()[:3])
