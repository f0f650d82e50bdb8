"""What ``reporting-svc check`` checks: every engine the service will use (store, catalog,
audit trail, keys and hooks), reached with its settings and database roles, changing
nothing on the way: no folder, file, secret or schema revision is made.

Readiness (api/health.py) asks the same questions of a running service, but ``serve``
makes what is missing before its workers start (a new deployment's root, its SQLite
catalog and schema); ``check`` runs before one and says what it would find instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa

from .audit.database import APPENDS
from .audit.sinks import FileSink
from .audit.tables import AUDIT
from .auth import make_authenticator, make_authoriser
from .catalog import database_limits
from .catalog.catalog import READS
from .catalog.engine import failure_of, make_engine, missing_privileges
from .catalog.schema import CATALOG, Migrations
from .settings import PREFIX, Settings, SettingsError, worker_processes
from .storage import make_store

#: PostgreSQL's settings that say how many clients it takes (reserved_connections: 16+).
CAPACITY = "max_connections", "superuser_reserved_connections", "reserved_connections"


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was found, and whether it stops the service."""

    text: str
    problem: bool = False


def findings(settings: Settings, environ: Mapping[str, str]) -> list[Finding]:
    """Everything ``check`` finds, problems and what is fine alike, in a stable order."""
    return [
        *_home(settings),
        *_hooks(settings),
        *_store(settings),
        *_folder("the var dir", settings.var_dir, f"{PREFIX}VAR_DIR"),
        *_catalog(settings),
        *_audit(settings),
        *_connections(settings, environ),
    ]


def _home(settings: Settings) -> Iterator[Finding]:
    """A home that holds no deployment yet: every command but check refuses it until one
    is started there, so check says how rather than only that its files can be made."""
    if settings.var_dir == settings.home / "var" and not settings.var_dir.is_dir():
        yield Finding(
            f"no deployment in {settings.home} yet: serve --init or publish --init starts one"
        )


def _hooks(settings: Settings) -> Iterator[Finding]:
    """The keys, grants and hooks load as a worker loads them; a development secret not
    made yet is stood in for, since ``serve`` makes it."""
    if settings.dev_secret and not settings.jwt_secret:
        where = settings.var_dir.absolute()
        yield Finding(f"the development secret is made under {where} at first start")
        settings = replace(settings, jwt_secret=secrets.token_urlsafe(48))
    try:
        make_authenticator(settings)
        make_authoriser(settings)
    except SettingsError as error:
        yield Finding(str(error), problem=True)
        return
    yield Finding("settings, keys and hooks load")


def _store(settings: Settings) -> Iterator[Finding]:
    if settings.store == "s3":
        problem = make_store(settings).check()
        where = f"{PREFIX}S3_BUCKET {settings.s3_bucket}"
        yield Finding(f"{problem} ({where})" if problem else f"{where} answers", bool(problem))
        return
    root, setting = settings.local_root.absolute(), f"{PREFIX}LOCAL_ROOT"
    if root.exists() or not settings.embedded_default:
        yield _readable(root, setting)
    else:
        yield from _folder("the local store's root", root, setting)


def _readable(root: Path, setting: str) -> Finding:
    """The service reads the store's folders (publish and the lifecycle commands write)."""
    if not root.is_dir():
        why = "is not a directory" if root.exists() else "does not exist: create it, or correct"
        return Finding(f"the local store's root {root} {why} {setting}", problem=True)
    if not os.access(root, os.R_OK | os.X_OK):
        return Finding(f"the local store's root {root} cannot be read by this user", True)
    return Finding(f"the local store's root {root} is readable")


def _folder(what: str, path: Path, setting: str) -> Iterator[Finding]:
    """A folder the service writes into, made at first start if missing."""
    path = path.absolute()
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            yield Finding(f"{what} {path} is not writable by this user ({setting})", True)
        return
    parent = next(folder for folder in path.parents if folder.exists())
    if path.exists() or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        yield Finding(f"{what} {path} cannot be made by this user ({setting})", True)
    else:
        yield Finding(f"{what} {path} is made at first start")


def _catalog(settings: Settings) -> Iterator[Finding]:
    url = sa.make_url(settings.catalog_database_url)
    if url.get_backend_name() != "sqlite":
        yield from _database(settings, url, "catalog", CATALOG, READS, "catalog upgrade")
        return
    path = Path(url.database or "").absolute()
    if not path.exists():
        if path.parent != settings.var_dir.absolute():  # else the var dir's finding says it
            yield from _folder("the SQLite catalog's folder", path.parent, f"{PREFIX}CATALOG_URL")
        return
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
        yield Finding(f"the SQLite catalog {path} or its folder is not writable by this user", True)
        return
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with engine.connect() as connection:
            revision = CATALOG.current_revision(connection)
    except sa.exc.SQLAlchemyError as error:
        yield Finding(f"the SQLite catalog {path} cannot be read: {failure_of(error)}", True)
        return
    finally:
        engine.dispose()
    if revision is not None and revision > CATALOG.head():
        yield Finding(f"the catalog is at revision {revision}, newer than this version's", True)
    elif revision != CATALOG.head():
        yield Finding(
            f"the SQLite catalog {path} is brought to revision {CATALOG.head()} by serve"
            " before gunicorn starts"
        )
    else:
        yield Finding(f"the SQLite catalog {path} is at revision {revision}")


def _audit(settings: Settings) -> Iterator[Finding]:
    if "postgres" in settings.audit_sink:
        url = sa.make_url(settings.audit_database_url)
        yield from _database(settings, url, "audit database", AUDIT, APPENDS, "audit grant ROLE")
    elif "file" in settings.audit_sink:
        yield from _audit_file(settings.audit_path, settings.var_dir.absolute())


def _audit_file(path: Path, var_dir: Path) -> Iterator[Finding]:
    """The trail appends as the service would: a regular writable file whose head names
    its length, or a folder it can be made in; read under a shared lock, never written."""
    path = path.absolute()
    if not path.exists():
        if path.parent != var_dir:  # else the var dir's finding says it
            yield from _folder("the audit trail's folder", path.parent, f"{PREFIX}AUDIT_FILE")
        return
    if not path.is_file() or not os.access(path, os.W_OK):
        yield Finding(f"the audit trail {path} is not a regular file this user may append to", True)
        return
    try:
        mismatch = FileSink(path).snapshot().mismatch
    except (OSError, ValueError) as error:
        yield Finding(f"the audit trail {path} cannot be read: {error}", True)
        return
    if mismatch:
        yield Finding(f"the audit trail {path} does not match its head: {mismatch}", True)
    else:
        yield Finding(f"the audit trail {path} matches its head")


def _database(
    settings: Settings,
    url: sa.URL,
    what: str,
    migrations: Migrations,
    needed: Mapping[str, tuple[str, ...]],
    fix: str,
) -> Iterator[Finding]:
    """PostgreSQL as the service's role: it connects, the schema is this version's (the
    service's role may not upgrade it), and the role holds what the service needs."""
    engine = make_engine(url.render_as_string(hide_password=False), database_limits(settings))
    try:
        with engine.connect() as connection:
            revision = migrations.current_revision(connection)
            current = revision == migrations.head()
            missing = missing_privileges(connection, needed) if current else []
    except sa.exc.SQLAlchemyError as error:
        yield Finding(f"the {what} cannot be reached: {failure_of(error)}", problem=True)
        return
    finally:
        engine.dispose()
    if not current:
        yield Finding(
            f"the {what} is at revision {revision or 'none (no tables)'}, not this version's"
            f" {migrations.head()}: run `reporting-svc {fix}` as the tables' owner",
            problem=True,
        )
    elif missing:
        yield Finding(f"the {what}'s role lacks {', '.join(missing)}", problem=True)
    else:
        yield Finding(f"the {what} answers, at revision {revision}, with the privileges needed")


def _connections(settings: Settings, environ: Mapping[str, str]) -> Iterator[Finding]:
    """Whether the server takes one host's pools: workers x engines x (pool + overflow),
    an engine per PostgreSQL database (catalog and audit trail share one on one URL)."""
    used = [settings.catalog_database_url]
    if "postgres" in settings.audit_sink:
        used.append(settings.audit_database_url)
    urls = sorted({url for url in used if sa.make_url(url).get_backend_name() == "postgresql"})
    if not urls:
        return
    pool = settings.database_pool_size + settings.database_pool_overflow
    workers = worker_processes(environ)
    per_host = workers * len(urls) * pool
    engine = make_engine(urls[0], database_limits(settings))
    try:
        with engine.connect() as connection:
            shown = {name: _setting(connection, name) for name in CAPACITY}
    except sa.exc.SQLAlchemyError:
        return  # the database's own finding names the failure
    finally:
        engine.dispose()
    reserved = shown["superuser_reserved_connections"] + shown["reserved_connections"]
    room = shown["max_connections"] - reserved
    sizes = (
        f"{workers} workers (WEB_CONCURRENCY) x {len(urls)} database(s) x"
        f" ({PREFIX}DATABASE_POOL_SIZE {settings.database_pool_size}"
        f" + {PREFIX}DATABASE_POOL_OVERFLOW {settings.database_pool_overflow})"
    )
    if per_host > room:
        yield Finding(
            f"one host may open {per_host} PostgreSQL connections ({sizes}), more than the"
            f" {room} the server takes (max_connections {shown['max_connections']} less"
            f" {reserved} reserved): lower them, or raise max_connections",
            problem=True,
        )
    else:
        yield Finding(
            f"PostgreSQL takes {room} connections: {room // per_host} host(s) like this one"
            f" fit, each opening at most {per_host} ({sizes})"
        )


def _setting(connection: sa.Connection, name: str) -> int:
    """A server setting as a number; 0 for one this server does not have."""
    value = connection.scalar(sa.select(sa.func.current_setting(name, True)))
    return int(value) if value else 0
