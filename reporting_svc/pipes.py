"""A command whose reader stops early (``reporting-svc audit show | head -1``) ends quietly."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")
#: What a shell reports for a filter killed by SIGPIPE (``yes | head -1``): 128 + 13.
CLOSED_PIPE_STATUS = 128 + signal.SIGPIPE


def quiet_when_the_reader_leaves(command: Callable[P, int]) -> Callable[P, int]:
    """``command``, ending with status 141 and no traceback when standard output is a
    pipe its reader closed, as a Unix filter does (so ``set -o pipefail`` sees it).

    Python ignores SIGPIPE, so the write raises BrokenPipeError instead of ending the
    process; the last flush is done here, where it can be caught, not at exit.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            status = command(*args, **kwargs)
            sys.stdout.flush()
        except BrokenPipeError:
            _discard_stdout()
            return CLOSED_PIPE_STATUS
        return status

    return run


def _discard_stdout() -> None:
    """Point standard output at the null device: the interpreter flushes it once more at
    exit, which would fail again and print "Exception ignored"."""
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)
