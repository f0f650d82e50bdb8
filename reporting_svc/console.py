"""The ``reporting-svc`` console script: every command when the service's packages are
installed, and the ``fetch`` client alone when they are not.

The base install is the client's (requests, tqdm, pathvalidate, http-sf, Werkzeug), so a
pipeline that only downloads reports installs a few megabytes; the service's commands need
the ``server`` extra (Flask, SQLAlchemy, boto3, gunicorn...). Without it every command but
``fetch`` fails in one line that says what to install.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from .fetch import FETCH_HELP, add_fetch_command

SERVER_EXTRA = "reporting-svc[server]"
# What an error may quote of an unknown argument: an option's name, never a value.
OPTION_NAME = re.compile(r"-[A-Za-z]|--[A-Za-z][A-Za-z0-9-]{0,39}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script: the whole command line, or the client's part."""
    try:
        from .cli import main as service_main
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] == __package__:
            raise  # a fault of this package, not a missing extra
        return client_main(sys.argv[1:] if argv is None else list(argv), missing)
    return service_main(argv)


def client_main(argv: list[str], missing: ModuleNotFoundError) -> int:
    """``fetch`` with the base install; any other command says to install the extra."""
    parser = argparse.ArgumentParser(
        prog="reporting-svc",
        description="The fetch client. The service's commands (serve, publish, token...) need "
        f"its packages: pip install '{SERVER_EXTRA}'.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    add_fetch_command(commands.add_parser("fetch", help=FETCH_HELP))
    command = next((text for text in argv if not text.startswith("-")), "fetch")
    if command != "fetch":
        print(
            f"reporting-svc: error: this command needs the service's packages, which are not "
            f"installed (no module named {missing.name!r}): pip install '{SERVER_EXTRA}'",
            file=sys.stderr,
        )
        return 2
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {named(unknown)}")
    return int(args.run(args))


def named(unknown: list[str]) -> str:
    """Unknown arguments by option name, values only counted: argparse would echo them all,
    and one may be a token typed in the wrong place (``fetch --token SECRET``)."""
    names = [text.split("=", 1)[0] for text in unknown if text.startswith("-")]
    shown = [name for name in names if OPTION_NAME.fullmatch(name)]
    hidden = len(unknown) - len(shown)
    counted = [f"{hidden} value{'s' * (hidden != 1)} (not shown)"] if hidden else []
    return ", ".join(shown + counted)
