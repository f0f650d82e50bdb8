"""``python -m bench``: run every scenario against its anchors and write bench/results/.

Options shorten a run while developing (``--quick``, ``--rounds``, ``--duration``) or add
the 1 GiB file (``--huge``); the default is what the committed table comes from.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .report import summarise, verdicts
from .reports import GIB, KIB, MIB
from .run import Plan, RunResult, run
from .table import machine, markdown

RESULTS = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per wrk run (default %(default)s)"
    )
    parser.add_argument("--huge", action="store_true", help="also a 1 GiB file")
    parser.add_argument(
        "--quick", action="store_true", help="no 256 MiB file: a fast check while developing"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where latest.* go")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="run nothing: write latest.md again from the raw figures of an earlier run",
    )
    return parser


def plan_from(args: argparse.Namespace) -> Plan:
    """The sizes and settings the options ask for."""
    large = [] if args.quick else [256 * MIB]
    if args.huge:
        large.append(GIB)
    return Plan(
        small_sizes=[KIB, MIB],
        large_sizes=large,
        connections=[1, 8, 64],
        rounds=args.rounds,
        duration=args.duration,
    )


def _notes(result: RunResult, plan: Plan) -> list[str]:
    """What a reader needs to weigh the figures: conditions, method, caveats."""
    cores = os.cpu_count() or 1
    # Only the load before the run tells of other work: the load after is mostly our own.
    busy = float(result.load_before.split()[0])
    after = f"{result.load_after} after (mostly the benchmark's own load)"
    shared = (
        f"**Shared machine**: load average {result.load_before} before the run (other work "
        f"was running), {after}, so absolute figures are lower and noisier than on an idle "
        "machine; ratios in the same run still hold."
        if busy >= 0.5 * cores
        else f"Load average {result.load_before} before the run, {after}."
    )
    return [
        shared,
        f"{plan.rounds} rounds, wrk {plan.duration:g} s per run at {plan.connections} "
        "connections (2 threads); large files one download at a time, repeated for "
        f"{plan.duration:g} s, timed by curl to /dev/null, "
        "the S3 anchor by boto3 get_object read in 1 MiB chunks. "
        f"The whole run took {result.seconds / 60:.1f} min.",
        "Client and servers share the same cores; every server listens on 127.0.0.1 only. "
        "gunicorn runs config/gunicorn.conf.py (gthread, workers and threads from the CPU "
        "count) for the service and for the bare anchors; nginx runs config/nginx.conf with "
        "the rate limit (rate and burst) lifted; the S3 server is moto's.",
        "S3 redirect under wrk counts 302 answers only (wrk does not follow them); its "
        "single downloads follow the redirect (curl -L). S3 direct under wrk fetches a "
        "presigned URL from the same S3 server. S3 x-accel is the service behind its own "
        "nginx, which relays from the same S3 server.",
        "First byte: curl's time_starttransfer for the 1 KiB report, one request at a time "
        "(a new connection each), repeated for the run's duration; S3 redirect's counts from "
        "the first request, the 302 included; S3 direct is curl on a presigned URL.",
        "Worker peak is the largest VmHWM among the gunicorn master's children, reset before "
        "each measurement; CPU is utime+stime of the master and its workers (and of nginx, "
        "its own column) per GiB received by the client, headers included.",
    ]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write latest.md and latest.json."""
    args = _parser().parse_args(argv)
    if args.render is not None:
        raw = json.loads(args.render.read_text())
        plan, result, info = Plan(**raw["plan"]), RunResult.from_json(raw), raw["machine"]
    else:
        plan = plan_from(args)
        # A run stopped with kill stops its servers too, as one stopped with Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            result = run(plan, log=lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            print("interrupted; every server was stopped", file=sys.stderr)
            return 130
        info = machine()
    rows = summarise(result.measurements)
    text = markdown(rows, verdicts(rows), info, _notes(result, plan))
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.md").write_text(text)
    if args.render is None:
        raw = {"machine": info, "plan": vars(plan), **result.as_json()}
        (args.output / "latest.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"wrote {args.output / 'latest.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
