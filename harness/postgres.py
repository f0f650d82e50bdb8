"""A private PostgreSQL server: initdb in a temporary folder, listening on 127.0.0.1 only.

PostgreSQL refuses to run as root, so as root the server runs as the unprivileged
``postgres`` user that Debian's package creates (``setpriv`` execs it as that user, so
the process the harness holds is the postmaster itself), in a folder of its own under
the system's temporary directory (a pytest folder is closed to other users). Clients
connect over TCP as the superuser ``reporting``, trusted on the loopback only.

The service itself connects as the role the deployment guide's "PostgreSQL roles" block makes:
``create_service_role`` runs that block's commands, read from docs/deploying.md, so the roles
the tests run the service with are exactly the documented ones.

A server started ``replicated`` may be given a synchronous standby (``start_standby``) on
another loopback address: a copy streamed from it (``pg_basebackup -R``) whose flush of
each commit the primary waits for, so a commit it acknowledged survives its loss. The
service reaches the pair through ``failover_url``, libpq's multi-host URL; ``crash`` stands
for the primary's host lost, ``promote`` makes the standby the server that takes writes.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.processes import free_port, stop, wait_for_port

SERVICE_USER = "postgres"
SUPERUSER = "reporting"
#: What the tests trade for speed; a benchmark keeps PostgreSQL's durable defaults.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
#: A replicated primary's commits wait for the standby (``synchronous_commit`` stays on);
#: fsync stays off, as the tests lose a process, never the machine's memory.
REPLICATED_SETTINGS = ("fsync=off", "full_page_writes=off")
#: The standby's name (its ``cluster_name``, which its WAL receiver gives the primary as
#: ``application_name``) in the primary's ``synchronous_standby_names``.
STANDBY = "standby"
#: The standby's loopback address (the primary listens on 127.0.0.1; the service hosts of
#: the several-hosts test use 127.0.0.2-4).
STANDBY_HOST = "127.0.0.5"
PROJECT = Path(__file__).resolve().parents[1]
DEPLOYING = PROJECT / "docs" / "deploying.md"
#: The deployment guide's heading of the block that makes the service's role, and that role's name.
ROLES_HEADING = "**PostgreSQL roles.**"
DOCUMENTED_ROLE = "reporting_svc"
#: The auditor's read-only role the block makes; its name holds the service's, so a test's
#: role of its own gets an auditor of its own (roles are the server's).
DOCUMENTED_AUDITOR = f"{DOCUMENTED_ROLE}_auditor"


def binary(name: str) -> str:
    """The newest installed PostgreSQL's program (Debian keeps them off the PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    located = found[-1] if found else shutil.which(name)
    if located is None:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed (postgresql-15)")
    return located


def _version(path: str) -> int:
    return int(Path(path).parents[1].name.split(".")[0])


@dataclass
class Postgres:
    """A running server; ``url(name)`` is a SQLAlchemy URL of one of its databases."""

    folder: Path
    port: int
    process: subprocess.Popen[Any]
    command: list[str]
    host: str = "127.0.0.1"

    def url(self, database: str = "postgres", *, user: str = SUPERUSER) -> str:
        return f"postgresql+psycopg://{user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres", *, user: str = SUPERUSER) -> str:
        """Run SQL with psql over TCP as ``user``; returns its unaligned output."""
        return self._psql(["-c", sql], database, user)

    def _psql(self, args: list[str], database: str, user: str = SUPERUSER) -> str:
        result = subprocess.run(
            [binary("psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", *args],
            env={**os.environ, "PGHOST": self.host, "PGPORT": str(self.port)}
            | {"PGUSER": user, "PGDATABASE": database},
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    def create_service_role(self, owner_url: str, role: str) -> str:
        """Make ``role`` in the database of ``owner_url`` (one ``create_database`` gave) as
        the deployment guide's roles block makes the service's; returns the role's URL.

        Each command of the block runs as written, with ``role`` for the documented name
        (roles are the server's, shared by every test database) and ``owner_url`` (the
        tables' owner, or the superuser standing for it) for any URL: ``psql`` here as the
        URL's user, ``reporting-svc`` with the block's settings only.
        """
        database = owner_url.rsplit("/", 1)[1]
        owner = urlsplit(owner_url).username or SUPERUSER
        for words in documented_role_commands():
            settings = {}
            while "=" in words[0]:
                name, value = words.pop(0).split("=", 1)
                settings[name] = owner_url if "://" in value else value
            args = [word.replace(DOCUMENTED_ROLE, role) for word in words[1:]]
            if words[0] == "psql":
                self._psql(args, database, owner)
            elif words[0] == "reporting-svc":
                env = {k: v for k, v in os.environ.items() if not k.startswith("REPORTING_SVC_")}
                result = subprocess.run(
                    [str(Path(sys.executable).parent / "reporting-svc"), *args],
                    env=env | settings,
                    cwd=PROJECT,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if result.returncode:
                    raise RuntimeError(f"the guide's {shlex.join(words)} failed: {result.stderr}")
            else:
                raise ValueError(f"the guide's roles block runs {words[0]}: not a known command")
        return self.url(database, user=role)

    def halt(self) -> None:
        """A fast shutdown (SIGINT: clients are disconnected); the data stays for ``resume``."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGINT)
        stop(self.process)

    def resume(self) -> None:
        """Start the halted server again on its port, with its data."""
        self.process = _launch(self.folder, self.command)
        _wait_until_up(self.host, self.port, self.process)

    def crash(self) -> None:
        """SIGKILL the postmaster and every process it started at once, as when the
        server's host is lost: no backend acknowledges anything after it."""
        for pid in [self.process.pid, *_children(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def promote(self) -> None:
        """Make this standby a primary (``pg_ctl promote``, which waits until it takes
        writes): it replays every WAL record it received first, so every commit its
        primary acknowledged is on it."""
        subprocess.run(
            [*_unprivileged(self.folder), binary("pg_ctl"), "promote", "-w", "-D", str(self.data)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then every process it started: a stuck server, whose
        kernel still accepts connections and acknowledges every byte sent to it."""
        for pid in [self.process.pid, *_children(self.process.pid)]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what ``freeze`` stopped; harmless on a server that runs."""
        for pid in [self.process.pid, *_children(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        """A fast shutdown, then the folder goes."""
        self.halt()
        shutil.rmtree(self.folder, ignore_errors=True)


def documented_role_commands() -> list[list[str]]:
    """The commands of the deployment guide's PostgreSQL roles block, split as sh splits them
    (comments left out, continued lines joined)."""
    section = DEPLOYING.read_text().split(ROLES_HEADING, 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [words for words in (shlex.split(line, comments=True) for line in lines) if words]


def start(*, durable: bool = False, replicated: bool = False) -> Postgres:
    """initdb and start a server on a free loopback port; ``stop`` ends it. A ``replicated``
    one waits for its commits' flush on the standby ``start_standby`` gives it."""
    folder = Path(tempfile.mkdtemp(prefix="reporting-svc-postgres-"))
    as_user = _unprivileged(folder)
    data = folder / "data"
    subprocess.run(
        [
            *as_user,
            binary("initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    settings = () if durable else REPLICATED_SETTINGS if replicated else FAST_SETTINGS
    return _serve(folder, "127.0.0.1", settings)


def start_standby(primary: Postgres, *, host: str = STANDBY_HOST) -> Postgres:
    """A synchronous standby of the ``replicated`` primary, listening on ``host``: a base
    backup streamed from it (``pg_basebackup -R`` writes how to follow it), started, and
    named in the primary's ``synchronous_standby_names`` (ALTER SYSTEM, then a reload), so
    from then on each commit is acknowledged only once the standby has flushed it.

    ``synchronous_commit = on`` (the default), not ``remote_apply``: a promotion replays
    everything the standby flushed before it takes writes, so a flushed commit is as safe
    as an applied one, and the service never reads from the standby."""
    folder = Path(tempfile.mkdtemp(prefix="reporting-svc-standby-"))
    as_user = _unprivileged(folder)
    subprocess.run(
        [
            *as_user,
            binary("pg_basebackup"),
            "-D",
            str(folder / "data"),
            "-h",
            primary.host,
            "-p",
            str(primary.port),
            "-U",
            SUPERUSER,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    standby = _serve(folder, host, (*REPLICATED_SETTINGS, f"cluster_name={STANDBY}"))
    primary.psql(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY}'")
    primary.psql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while "sync" not in primary.psql("SELECT sync_state FROM pg_stat_replication").split():
        if time.monotonic() > deadline:
            standby.stop()
            raise TimeoutError(f"the standby on {host} did not become synchronous within 30 s")
        time.sleep(0.05)
    return standby


def failover_url(servers: Sequence[Postgres], database: str, *, user: str = SUPERUSER) -> str:
    """libpq's multi-host URL of ``database`` on ``servers``, in SQLAlchemy's form: each new
    connection tries them in order and keeps the first that takes writes, so after a
    promotion the service reaches the new primary without a restart."""
    hosts = ",".join(server.host for server in servers)
    ports = ",".join(str(server.port) for server in servers)
    return (
        f"postgresql+psycopg://{user}@/{database}"
        f"?host={hosts}&port={ports}&target_session_attrs=read-write"
    )


def _serve(folder: Path, host: str, settings: Sequence[str]) -> Postgres:
    """Start the server of ``folder``'s data on a free port of ``host``; ``stop`` ends it."""
    port = free_port()
    command = [
        *_unprivileged(folder),
        binary("postgres"),
        "-D",
        str(folder / "data"),
        "-h",
        host,
        "-p",
        str(port),
        "-k",
        str(folder),
        *(arg for setting in settings for arg in ("-c", setting)),
    ]
    server = Postgres(folder, port, _launch(folder, command), command, host)
    try:
        _wait_until_up(host, port, server.process)
    except Exception:
        server.stop()
        raise
    return server


def _children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (PostgreSQL's backends put themselves in
    sessions of their own, so the postmaster's process group does not hold them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _launch(folder: Path, command: list[str]) -> subprocess.Popen[Any]:
    with (folder / "postgres.stderr").open("a") as log:
        return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)


def _wait_until_up(host: str, port: int, process: subprocess.Popen[Any]) -> None:
    wait_for_port(port, process, host=host)
    _wait_until_accepting(host, port, process)


def _wait_until_accepting(
    host: str, port: int, process: subprocess.Popen[Any], timeout: float = 30
) -> None:
    """The port opens before recovery ends; pg_isready says when sessions are accepted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited early with {process.returncode}")
        ready = subprocess.run(
            [binary("pg_isready"), "-q", "-h", host, "-p", str(port)], check=False
        )
        if ready.returncode == 0:
            return
        time.sleep(0.05)
    raise TimeoutError(f"postgres on {host}:{port} did not accept sessions within {timeout}s")


def _unprivileged(folder: Path) -> list[str]:
    """The command prefix that runs a program as the service user when we are root."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam(SERVICE_USER)
    os.chown(folder, user.pw_uid, user.pw_gid)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]
