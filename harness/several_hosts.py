"""docs/deploying.md's "Several hosts" recipe on one machine: ``python -m harness.several_hosts
up`` starts it, ``down`` stops it (``make hosts`` / ``make hosts-stop``).

On loopback addresses: moto's S3 server with one bucket; PostgreSQL with a database that an
owner role holds, the service's role and the auditor's made by the guide's roles block as
written (it runs the migrations as the owner), and a synchronous standby on 127.0.0.5 that
every role reaches through libpq's multi-host URL (the guide's "PostgreSQL failover");
three ``reporting-svc serve`` hosts on 127.0.0.2-4, each with its own var folder, all
connecting as the service's role and signing with one generated key; config/nginx.conf
balancing them. It publishes a sample as the owner and prints curl lines that go through
nginx. What runs is written to ``FOLDER/state.json`` (pids, addresses, URLs), so ``down``
stops it from another process.

The tests run this very code (tests/reliability/test_several_hosts.py): a user's recipe
and CI's multi-host deployment cannot drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from harness import nginx, postgres
from harness.processes import free_port, wait_for_port
from reporting_svc.catalog import Catalog, make_catalog
from reporting_svc.settings import Settings, load_settings
from reporting_svc.storage import Store
from reporting_svc.storage.s3 import S3Store

BIN = Path(sys.executable).parent
FOLDER = Path("var/hosts")
ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
#: The guide's heading of the recipe, whose SQL ``start_database`` runs; the names it uses.
RECIPE_HEADING = "### The recipe on one machine"
DATABASE = "reporting"
#: The role that owns the tables; the guide's block makes the other two.
OWNER = "reporting_owner"
SERVICE_ROLE = postgres.DOCUMENTED_ROLE
AUDITOR_ROLE = postgres.DOCUMENTED_AUDITOR
BUCKET = "reports"
#: moto's S3 server accepts any credentials; the hosts need some to sign with.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: The caller's settings that reach the hosts: the service's, and gunicorn's workers and threads.
SETTINGS = ("REPORTING_SVC_", "GUNICORN_", "WEB_CONCURRENCY")
#: How long a host may take from exec to a ready answer (migrations already ran).
READY_SECONDS = 60.0
#: How long ``down`` waits for a process after SIGTERM before SIGKILL (gunicorn's graceful
#: timeout is longer: a recipe being taken down does not wait for slow downloads).
STOP_SECONDS = 20.0
#: What ``down`` stops first, by the start of its name: clients' way in first, so nothing
#: is still sent to a host or a database that is going.
STOP_ORDER = ("nginx", "host ", "postgres")


class RecipeError(RuntimeError):
    """The recipe cannot start or stop as asked; the message says why."""


@dataclass
class State:
    """What ``up`` started, as ``FOLDER/state.json`` holds it."""

    folder: str
    balancer: str = ""
    #: Address to URL.
    hosts: dict[str, str] = field(default_factory=dict)
    s3_endpoint: str = ""
    #: Role (owner, service, auditor) to URL.
    database: dict[str, str] = field(default_factory=dict)
    #: PostgreSQL's data folder, which ``down`` removes.
    postgres_folder: str = ""
    #: Process name to pid; each leads a process group of its own. ``down`` stops "nginx",
    #: then each "host …", then each "postgres…" (a fast shutdown), then the rest.
    pids: dict[str, int] = field(default_factory=dict)
    #: The synchronous standby's data folder, which ``down`` removes too.
    standby_folder: str = ""
    #: The settings every host runs with (each adds its own REPORTING_SVC_VAR_DIR): the
    #: recipe's, and the caller's whose names start with one of ``SETTINGS``.
    env: dict[str, str] = field(default_factory=dict)
    curl: str = ""

    @classmethod
    def load(cls, folder: Path) -> State:
        path = folder / "state.json"
        if not path.is_file():
            raise RecipeError(f"nothing runs from {folder}: no {path}")
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        path = Path(self.folder) / "state.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        path.chmod(0o600)  # it holds the signing key (in env)

    def host_env(self, address: str) -> dict[str, str]:
        """A host's environment: this process's, less any settings of its own, then the
        shared settings and the host's own var folder."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
        var_dir = str(Path(self.folder) / address)
        return {**inherited, **self.env, "REPORTING_SVC_VAR_DIR": var_dir}

    def owner_env(self) -> dict[str, str]:
        """The settings of the owner's commands (publish, withdraw, catalog upgrade)."""
        return self.role_env("owner")

    def auditor_env(self) -> dict[str, str]:
        """The settings of the auditor's commands (audit verify, audit show)."""
        return self.role_env("auditor")

    def role_env(self, role: str) -> dict[str, str]:
        """The hosts' settings with the database reached as ``role`` (a key of ``database``)."""
        url = self.database[role]
        return {
            **self.host_env(role),
            "REPORTING_SVC_CATALOG_URL": url,
            "REPORTING_SVC_AUDIT_URL": url,
        }


@dataclass(frozen=True)
class Database:
    """The recipe's PostgreSQL: the primary, its synchronous standby, and the multi-host
    URLs of the owner's, the service's and the auditor's roles on its one database."""

    server: postgres.Postgres
    standby: postgres.Postgres
    owner: str
    service: str
    auditor: str


def start_database() -> Database:
    """PostgreSQL with the guide's roles: a database held by an owner role (as a provider
    or a DBA gives it; the recipe's SQL, read from the guide), then the guide's roles
    block run as that owner, which makes the service's and the auditor's roles and runs
    the migrations. Then a synchronous standby joins it, and every role's URL names both
    (``target_session_attrs=read-write``), so a promoted standby is found without a restart."""
    server = postgres.start(replicated=True)
    try:
        for statement in documented_setup():
            server.psql(statement)
        server.create_service_role(server.url(DATABASE, user=OWNER), SERVICE_ROLE)
        standby = postgres.start_standby(server)
    except Exception:
        server.stop()
        raise
    pair = (server, standby)
    return Database(
        server,
        standby,
        postgres.failover_url(pair, DATABASE, user=OWNER),
        postgres.failover_url(pair, DATABASE, user=SERVICE_ROLE),
        postgres.failover_url(pair, DATABASE, user=AUDITOR_ROLE),
    )


def documented_setup() -> list[str]:
    """The SQL the guide's recipe runs as the superuser (its first ``sql`` block), one
    statement each: the owner role and its database."""
    section = postgres.DEPLOYING.read_text().split(RECIPE_HEADING, 1)[1]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    return [statement.strip() for statement in block.split(";") if statement.strip()]


def up(
    folder: Path = FOLDER, *, environ: Mapping[str, str] | None = None, client_limits: bool = True
) -> State:
    """Start the whole recipe under ``folder``; returns its state (also saved there).

    Settings in ``environ`` (the caller's environment by default) whose names start with
    one of ``SETTINGS`` (``WEB_CONCURRENCY``, ``REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT``, …)
    reach every host, under the recipe's own; the rest of it stays out of the state file.
    ``client_limits`` False lifts nginx's per-client limits, for a load test from one address.
    Anything that fails to start is stopped again before the error is raised.
    """
    folder = folder.absolute()
    if (folder / "state.json").exists():
        raise RecipeError(f"{folder} already holds a running recipe: run `down` first")
    folder.mkdir(parents=True, exist_ok=True)
    state = State(str(folder))
    try:
        _start(state, dict(os.environ if environ is None else environ), client_limits=client_limits)
    except BaseException:
        down(folder, state=state)
        raise
    return state


def _start(state: State, environ: dict[str, str], *, client_limits: bool) -> None:
    folder = Path(state.folder)
    state.s3_endpoint = _start_s3(state)
    database = start_database()
    state.pids["postgres"] = database.server.process.pid
    state.pids["postgres standby"] = database.standby.process.pid
    state.postgres_folder = str(database.server.folder)
    state.standby_folder = str(database.standby.folder)
    state.database = {"owner": database.owner, "service": database.service}
    state.database["auditor"] = database.auditor
    state.save()
    key = secrets.token_urlsafe(48)
    state.env = {k: v for k, v in environ.items() if k.startswith(SETTINGS)}
    state.env.update(
        S3_CREDENTIALS,
        REPORTING_SVC_STORE="s3",
        REPORTING_SVC_S3_BUCKET=BUCKET,
        REPORTING_SVC_S3_PREFIX="clinical/",
        REPORTING_SVC_S3_REGION="us-east-1",
        REPORTING_SVC_S3_ENDPOINT_URL=state.s3_endpoint,
        REPORTING_SVC_CATALOG_URL=database.service,
        REPORTING_SVC_AUDIT_SINK="postgres",
        REPORTING_SVC_AUDIT_URL=database.service,
        REPORTING_SVC_JWT_SECRET=key,
        REPORTING_SVC_TRUSTED_PROXIES="127.0.0.1",
    )
    start_hosts(state, ADDRESSES)
    state.balancer = _start_balancer(state, folder, client_limits=client_limits)
    state.curl = _publish_sample(state)
    state.save()


def _start_s3(state: State) -> str:
    """moto's S3 server on a free port, with the recipe's bucket."""
    port = free_port()
    process = _spawn(
        Path(state.folder) / "moto.log",
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
    )
    state.pids["s3"] = process.pid
    wait_for_port(port, process)
    endpoint = f"http://127.0.0.1:{port}"
    _s3_client(endpoint).create_bucket(Bucket=BUCKET)
    return endpoint


def start_hosts(state: State, addresses: Sequence[str]) -> None:
    """``reporting-svc serve`` on each address (a free port of its own, or the one it had:
    how a test restarts a host it killed), as the service's role, all at once; returns once
    every ``/readyz`` answers 200, their URLs in ``state.hosts``."""
    started = {}
    for address in addresses:
        known = state.hosts.get(address, "").removeprefix("http://")
        bind = known or f"{address}:{_free_port_on(address)}"
        started[address] = _spawn(
            Path(state.folder) / f"{address}.log",
            [str(BIN / "reporting-svc"), "serve", "--bind", bind],
            env=state.host_env(address),
        )
        state.pids[f"host {address}"] = started[address].pid
        state.hosts[address] = f"http://{bind}"
    state.save()
    deadline = time.monotonic() + READY_SECONDS
    for address, process in started.items():
        while not _ready(state.hosts[address]):
            if process.poll() is not None:
                raise RecipeError(f"host {address} exited: see {state.folder}/{address}.log")
            if time.monotonic() > deadline:
                raise RecipeError(f"host {address} was not ready within {READY_SECONDS:.0f} s")
            time.sleep(0.2)


def _free_port_on(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    return False


def _start_balancer(state: State, folder: Path, *, client_limits: bool) -> str:
    """config/nginx.conf with one upstream line per host, on a free port of 127.0.0.1.

    Without ``client_limits`` the per-client rate and requests in progress are lifted: every
    client of a recipe on one machine is 127.0.0.1, so a load test's clients count as one.
    """
    port = free_port()
    site = nginx.site(
        port,
        [url.removeprefix("http://") for url in state.hosts.values()],
        folder / "reports",
        folder,
        rate=nginx.SHIPPED_RATE if client_limits else None,
    )
    home = folder / "nginx"
    home.mkdir(exist_ok=True)
    config = nginx.main_config(home, site)
    process = _spawn(folder / "nginx.log", nginx.command(home, config))
    state.pids["nginx"] = process.pid
    wait_for_port(port, process)
    return f"http://127.0.0.1:{port}"


def _publish_sample(state: State) -> str:
    """Publish the sample report as the owner (what ``reporting-svc publish`` does, in
    process) and return the curl lines that download and list it through nginx."""
    from reporting_svc.lifecycle.sample import ensure_sample
    from reporting_svc.startup import curl_lines

    settings, store, catalog = as_owner(state)
    return curl_lines(settings, ensure_sample(store, catalog), state.balancer)


def as_owner(state: State) -> tuple[Settings, Store, Catalog]:
    """The owner's settings, store and catalog, for publishing in process."""
    settings = load_settings(state.owner_env())
    store = S3Store(_s3_client(state.s3_endpoint), settings.s3_bucket, settings.s3_prefix)
    return settings, store, make_catalog(settings)


def _s3_client(endpoint: str) -> Any:
    """A client of the recipe's S3 server with the hosts' credentials (this process's
    environment need not hold them)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _spawn(
    log: Path, command: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[Any]:
    """A process in a session of its own (it outlives ``up``), output appended to ``log``."""
    with log.open("a") as out:
        return subprocess.Popen(
            command,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def down(folder: Path = FOLDER, *, state: State | None = None) -> list[str]:
    """Stop what ``up`` started, the balancer first and the database and S3 last; returns
    the names of what was still running. PostgreSQL's folders go; the logs stay."""
    folder = folder.absolute()
    state = state or State.load(folder)
    stopped = []
    for tier in range(len(STOP_ORDER) + 1):
        stopped += _stop({name: pid for name, pid in state.pids.items() if _tier(name) == tier})
    for data in (state.postgres_folder, state.standby_folder):
        if data:
            shutil.rmtree(data, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (folder / "state.json").unlink()
    return stopped


def _tier(name: str) -> int:
    """When ``down`` stops a process: its place in ``STOP_ORDER``, else after them all."""
    found = (tier for tier, prefix in enumerate(STOP_ORDER) if name.startswith(prefix))
    return next(found, len(STOP_ORDER))


def _stop(pids: dict[str, int]) -> list[str]:
    """Signal each process group (SIGINT to PostgreSQL: its fast shutdown; SIGTERM to the
    rest), wait for the leaders together, SIGKILL any group that outlives ``STOP_SECONDS``;
    returns the names of those that were running."""
    running = {name: pid for name, pid in pids.items() if not _gone(pid)}
    for name, pid in running.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGINT if name.startswith("postgres") else signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while not all(_gone(pid) for pid in running.values()):
        if time.monotonic() > deadline:
            for pid in running.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        time.sleep(0.05)
    return list(running)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaped here when it is this process's child)."""
    with contextlib.suppress(ChildProcessError):
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def main(argv: Sequence[str] | None = None) -> int:
    """``up`` prints the curl lines and how to stop; ``down`` what it stopped."""
    parser = argparse.ArgumentParser(prog="python -m harness.several_hosts", description=__doc__)
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--folder", type=Path, default=FOLDER, help="state and logs (%(default)s)")
    parser.add_argument(
        "--no-client-limits",
        action="store_true",
        help="lift nginx's per-client limits (a load test: every client here is 127.0.0.1)",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "down":
            stopped = down(args.folder)
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
            return 0
        state = up(args.folder, client_limits=not args.no_client_limits)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"several_hosts: error: {error}", file=sys.stderr)
        return 1
    hosts = ", ".join(state.hosts.values())
    print(f"S3 (moto): {state.s3_endpoint}, bucket {BUCKET}")
    print(f"PostgreSQL: {state.database['service']} (the hosts' role; primary, then standby)")
    print(f"hosts: {hosts}")
    print(f"nginx: {state.balancer}")
    print(state.curl)
    print(
        "stop it all: make hosts-stop, or python -m harness.several_hosts down --folder",
        shlex.quote(str(args.folder)),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
