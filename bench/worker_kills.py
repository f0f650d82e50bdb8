"""``python -m bench.worker_kills``: gunicorn workers SIGKILLed at random under load, for as
long as it takes to kill hundreds of them, on the file audit trail.

``--clients`` threads download a 1 KiB report over keep-alive connections while a random
worker is SIGKILLed every ``--interval`` seconds on average, every 4th kill aimed at the
moment between a batch's bytes and its head (strace stops the worker there, then it is
killed).
Prints how many kills landed in that window, how many downloads were served, cut (the
victims' own connections) and refused (what a person would have had to fix), whether
each kill was followed by a served download, and what ``audit verify`` says at the end.
The reliability suite makes the same run with 16 kills.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tests.integration.processes import Processes, run_cli
from tests.reliability.deployments import deploy, wait_for_workers
from tests.reliability.kills import kill_at_random


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_kills", description=__doc__)
    parser.add_argument("--kills", type=int, default=300, help="(default %(default)s)")
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between kills")
    parser.add_argument("--clients", type=int, default=32, help="(default %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="(default %(default)s)")
    parser.add_argument("--seed", type=int, default=20, help="which workers are killed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-kills-") as temp:
        processes = Processes(Path(temp))
        try:
            deployment = deploy(
                processes,
                "stream",
                {"small.bin": os.urandom(1024)},
                workers=args.workers,
                GUNICORN_THREADS=str(args.clients + 2),
                # The clients' one token stands for many callers: the host's whole share.
                REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT=str(args.clients),
            )
            wait_for_workers(deployment.master, args.workers)
            run = kill_at_random(
                deployment,
                kills=args.kills,
                interval=args.interval,
                clients=args.clients,
                seed=args.seed,
            )
            verified = run_cli("audit", "verify", env=deployment.env, check=False)
        finally:
            processes.stop_all()
    figures = {
        **run.summary(),
        "served_after_each_kill": run.served_after_each_kill(),
        "verify_exit": verified.returncode,
        "verify": verified.stdout.strip(),
        "verify_notes": verified.stderr.strip(),
    }
    print(json.dumps(figures, indent=2))
    for attempt in run.refused()[:5]:
        print(f"refused: {attempt.problem}", file=sys.stderr)
    clean = not run.refused() and run.served_after_each_kill() and verified.returncode == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
