"""``reporting-svc fetch``: a client of the public API that lists, downloads, resumes and
verifies a study's reports (or one job) into a folder, fit for nightly pipelines."""

import argparse

from .command import fetch_command
from .options import add_fetch_arguments

FETCH_HELP = "download reports: resume, verify, skip what is here"


def add_fetch_command(parser: argparse.ArgumentParser) -> None:
    """Give the ``fetch`` subcommand its options; it needs no service settings."""
    add_fetch_arguments(parser)
    parser.set_defaults(run=fetch_command, client=True)
