"""The ``reporting-svc`` command: serve, check, publish, withdraw, purge, token, audit and
catalog, on the same settings; fetch, a client of the API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

from . import create_app
from .audit import AuditUnavailableError
from .audit.commands import add_audit_commands
from .audit.database import AuditDatabaseError
from .auth.grants import GrantError, parse_grant
from .auth.tokens import mint_token
from .catalog import CatalogError, SchemaBehind, make_catalog
from .catalog.commands import add_catalog_commands, upgrade_host_catalog
from .console import named
from .fetch import FETCH_HELP, add_fetch_command
from .lifecycle.commands import add_lifecycle_commands
from .lifecycle.publish import NotIndexed, PublishError, publish_report
from .lifecycle.sample import ensure_sample
from .pipes import quiet_when_the_reader_leaves
from .preflight import findings
from .settings import (
    BIND_VARIABLE,
    DEFAULT_BIND,
    Settings,
    SettingsError,
    bind_address,
    load_settings,
)
from .startup import announce
from .storage import JobExists, StoreError, make_store

INIT_HELP = "start a new, empty deployment in the home if it holds none (docs/settings.md)"
# gunicorn's settings ship in the package; gunicorn imports them by module name, so an
# installed service finds them from any directory.
GUNICORN_CONFIG = "python:reporting_svc.server.conf"


@quiet_when_the_reader_leaves
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; every failure is one line on stderr."""
    parser = command_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {named(unknown)}")
    if getattr(args, "client", False):  # a client of the API: no service settings to load
        return int(args.run(args))
    try:
        settings = load_settings(
            init=getattr(args, "init", False), read_only=getattr(args, "read_only", False)
        )
        return int(args.run(settings, args))
    except (SettingsError, GrantError, PublishError, ValueError) as error:
        print(f"reporting-svc: error: {error}", file=sys.stderr)
        return 2
    except JobExists as error:
        print(
            f"reporting-svc: error: job {error} already exists; files are written once",
            file=sys.stderr,
        )
        return 1
    except StoreError as error:
        print(f"reporting-svc: error: the store failed: {error}", file=sys.stderr)
        return 1
    except NotIndexed as error:
        print(
            f"reporting-svc: error: {error}; publish it again with --job-id {error.job_id}, "
            "or run `reporting-svc catalog rebuild`, to list it",
            file=sys.stderr,
        )
        return 1
    except CatalogError as error:
        print(f"reporting-svc: error: the catalog failed: {error}", file=sys.stderr)
        return 1
    except SchemaBehind as error:
        print(f"reporting-svc: error: {error}", file=sys.stderr)
        return 1
    except AuditUnavailableError as error:
        print(f"reporting-svc: error: the audit trail failed: {error}", file=sys.stderr)
        return 1
    except AuditDatabaseError as error:
        print(f"reporting-svc: error: the audit database failed: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # standard output's reader left: ends quietly (see pipes)
    except OSError as error:  # a folder or file of the deployment that cannot be used
        where = f": {error.filename}" if error.filename else ""
        print(f"reporting-svc: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Upgrade an SQLite catalog (the deploy step: no request migrates), check the settings
    by building the app, publish the sample, then run gunicorn; the curl lines come once
    it listens (server/conf.py's when_ready)."""
    upgrade_host_catalog(settings)
    app = create_app(settings)
    problem = app.extensions["reporting_svc"].store.check()
    if problem:  # /readyz answers 503 until it is fixed; the service starts to say so
        print(f"reporting-svc: warning: {problem}", file=sys.stderr, flush=True)
    if settings.embedded_default:
        services = app.extensions["reporting_svc"]
        ensure_sample(services.store, services.catalog)
    if args.dev:
        return _serve_dev(settings, app, args.bind or bind_address(os.environ))
    config = args.gunicorn_config
    if not config.startswith("python:") and not Path(config).is_file():
        raise SettingsError(f"gunicorn config {config} not found; pass --gunicorn-config")
    command = [sys.executable, "-m", "gunicorn", "--config", config]
    # Through the config file, so GUNICORN_CMD_ARGS's --bind still wins over --bind.
    env = {**os.environ, BIND_VARIABLE: args.bind} if args.bind else dict(os.environ)
    os.execve(sys.executable, [*command, "reporting_svc:create_app()"], env)  # noqa: S606
    return 0


def _serve_dev(settings: Settings, app: Flask, bind: str) -> int:
    """Flask's development server: the curl lines once it listens, then serve."""
    host, _, port = bind.rpartition(":")
    try:
        server = make_server(host.strip("[]"), int(port), app, threaded=True)
    except OSError as error:
        print(f"reporting-svc: error: cannot listen on {bind}: {error.strerror}", file=sys.stderr)
        return 1
    announce(settings, server.socket.getsockname()[:2])
    server.serve_forever()
    return 0


def publish(settings: Settings, args: argparse.Namespace) -> int:
    """Write a report file and its record into the configured store, index it in the
    catalog; print the record. An SQLite catalog is created or upgraded first, as
    ``serve`` does."""
    upgrade_host_catalog(settings)
    catalog = make_catalog(settings)
    record = publish_report(
        make_store(settings),
        args.file,
        catalog=catalog,
        report_name=args.report_name,
        mode=args.mode,
        study_id=None if args.tenant else args.study_id,
        job_id=args.job_id,
        kickoff=args.kickoff,
        required_permission=args.required_permission,
        file_name=args.file_name,
        rpt_id=args.report_id,
        search_spec=args.search_spec,
        sort_spec=args.sort_spec,
        retain_days=_retention(settings, args),
        expires_at=args.expires_at,
        allow_past_expiry=args.allow_past_expiry,
    )
    print(json.dumps(asdict(record), indent=2, ensure_ascii=False))
    return 0


def _retention(settings: Settings, args: argparse.Namespace) -> int | None:
    """The days given, else the default; none when an instant is given instead."""
    if args.expires_at is not None:
        return None
    if args.retain_days is not None:
        return int(args.retain_days)
    return settings.retention_days or None


def check(settings: Settings, args: argparse.Namespace) -> int:
    """Load what a worker loads and reach every engine it will use, changing nothing: run
    before a start or a reload, since a worker that cannot start (a broken key file, say)
    makes gunicorn stop altogether. One line per finding; exit 1 if any is a problem."""
    found = findings(settings, os.environ)
    for finding in found:
        if finding.problem:
            print(f"reporting-svc: error: {finding.text}", file=sys.stderr)
        else:
            print(f"OK: {finding.text}")
    return 1 if any(finding.problem for finding in found) else 0


def token(settings: Settings, args: argparse.Namespace) -> int:
    """Print a token signed with the configured secret, for development and tests."""
    if args.ttl <= 0:
        raise ValueError(
            f"--ttl must be a positive number of seconds; {args.ttl} would mint an expired token"
        )
    grants = [parse_grant(text) for text in args.grant]
    print(mint_token(settings, args.subject, grants, ttl=args.ttl))
    return 0


def command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reporting-svc", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("serve", help="run the service under gunicorn")
    run.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help=f"where to listen (default: {BIND_VARIABLE}, else {DEFAULT_BIND});"
        " GUNICORN_CMD_ARGS's --bind wins",
    )
    run.add_argument("--dev", action="store_true", help="Flask's development server instead")
    run.add_argument("--init", action="store_true", help=INIT_HELP)
    run.add_argument(
        "--gunicorn-config",
        default=GUNICORN_CONFIG,
        metavar="PATH",
        help="a gunicorn config file (default: the package's, %(default)s)",
    )
    run.set_defaults(run=serve)

    verify = commands.add_parser(
        "check", help="check settings, keys and hooks load and every engine answers; change nothing"
    )
    verify.set_defaults(run=check, read_only=True)

    put = commands.add_parser("publish", help="publish a report file into the store")
    put.add_argument("file", type=Path)
    put.add_argument("--report-name", required=True)
    put.add_argument("--mode", required=True, help="test, active or training")
    scope = put.add_mutually_exclusive_group(required=True)
    scope.add_argument("--study-id")
    scope.add_argument("--tenant", action="store_true", help="a tenant-level report")
    put.add_argument("--job-id", help="default: a new random GUID")
    put.add_argument("--kickoff", help="ISO-8601 kickoff date-time with its zone (default: now)")
    put.add_argument("--required-permission", default="REPORTING_VIEW")
    put.add_argument("--file-name", help="the name clients save it as (default: FILE's)")
    put.add_argument("--report-id", metavar="GUID", help="the report definition's id (rptId)")
    put.add_argument("--search-spec", metavar="TEXT", help="the run's search (currSearchSpec)")
    put.add_argument("--sort-spec", metavar="TEXT", help="the run's sort (currSortSpec)")
    expiry = put.add_mutually_exclusive_group()
    expiry.add_argument(
        "--retain-days",
        type=int,
        metavar="N",
        help="the report expires N days after publishing (default: REPORTING_SVC_RETENTION_DAYS,"
        " unset: never)",
    )
    expiry.add_argument(
        "--expires-at", metavar="ISO", help="the report expires at this instant (with its zone)"
    )
    put.add_argument(
        "--allow-past-expiry",
        action="store_true",
        help="publish even if --expires-at is past (the report is then gone, 410, at once)",
    )
    put.add_argument("--init", action="store_true", help=INIT_HELP)
    put.set_defaults(run=publish)

    add_lifecycle_commands(commands)

    mint = commands.add_parser("token", help="print a development token")
    mint.add_argument("--subject", required=True)
    mint.add_argument("--grant", action="append", required=True, metavar="SCOPE:MODES:PERMISSIONS")
    mint.add_argument("--ttl", type=int, default=3600, help="seconds (default %(default)s)")
    mint.set_defaults(run=token)

    fetch = commands.add_parser("fetch", help=FETCH_HELP)
    add_fetch_command(fetch)

    audit = commands.add_parser("audit", help="verify, repair or show the audit trail of downloads")
    add_audit_commands(audit)

    catalog = commands.add_parser("catalog", help="upgrade, rebuild or check the job catalog")
    add_catalog_commands(catalog)
    return parser
