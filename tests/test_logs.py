"""JSON log lines for the app and gunicorn: their fields, the request id, and no secrets."""

from __future__ import annotations

import ast
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from gunicorn.config import Config
from gunicorn.http.errors import InvalidHeader, NoMoreData
from werkzeug.test import EnvironBuilder

from reporting_svc import create_app, logs
from reporting_svc.http.response_headers import request_id
from reporting_svc.logs import ACCESS_FIELDS, JsonFormatter, RequestIdFilter
from reporting_svc.server.logger import GunicornLogger
from reporting_svc.settings import Settings
from reporting_svc.storage import JobRecord, Store, StoreError
from tests.support import DOWNLOAD, SECRET, STUDY

METRICS_TOKEN = "metrics-scrape-token-that-must-not-be-logged"
SANE_ID = "trace-42.a:b_c"

Download = Callable[..., Any]


class Keep(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _restore_log_level() -> Iterator[None]:
    """This module's apps log at DEBUG; later tests get the level they had."""
    logger = logging.getLogger("reporting_svc")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """DEBUG, so that no record, however chatty, escapes the secret checks."""
    return make_settings(log_level="DEBUG", metrics_token=METRICS_TOKEN)


@pytest.fixture
def records(app: Flask) -> Iterator[list[logging.LogRecord]]:
    """Every record of the ``reporting_svc`` logger tree during the test."""
    handler = Keep()
    logger = logging.getLogger("reporting_svc")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


@pytest.fixture
def stderr_lines(app: Flask) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the app's JSON handler writes to standard error, parsed line by line."""
    handler = next(
        h
        for h in logging.getLogger("reporting_svc").handlers
        if isinstance(h.formatter, JsonFormatter) and isinstance(h, logging.StreamHandler)
    )
    buffer = io.StringIO()
    original = handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    handler.setStream(original or sys.stderr)


@pytest.fixture
def job(publish: Callable[..., JobRecord]) -> JobRecord:
    return publish()


def _record(message: str = "hello %s", *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "reporting_svc.test", logging.WARNING, __file__, 1, message, args, None
    )
    record.__dict__.update(extra)
    return record


def _break(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every record lookup fail as an unreachable store does."""

    def fail(job_id: str) -> JobRecord:
        raise StoreError("disk on fire")

    monkeypatch.setattr(store, "get_record", fail)


# --- JsonFormatter ---------------------------------------------------------------------


def test_formatter_writes_time_level_logger_and_message_as_one_json_line() -> None:
    line = JsonFormatter().format(_record("hello %s", "world"))

    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["level"] == "warning"
    assert entry["logger"] == "reporting_svc.test"
    assert entry["message"] == "hello world"
    assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)


def test_formatter_adds_the_request_fields_present_and_omits_absent_ones() -> None:
    record = _record(requestId="r-1", route="download", status=206, duration=0.5, subject=None)

    entry = json.loads(JsonFormatter().format(record))

    assert entry["requestId"] == "r-1"
    assert entry["route"] == "download"
    assert entry["status"] == 206
    assert entry["duration"] == 0.5
    assert "subject" not in entry
    assert "method" not in entry


def test_formatter_ignores_extra_fields_it_does_not_name() -> None:
    entry = json.loads(JsonFormatter().format(_record(authorization="Bearer x", body="data")))

    assert "authorization" not in entry
    assert "body" not in entry


def test_formatter_puts_an_exception_in_error_on_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed"
    assert entry["error"].startswith("Traceback")
    assert entry["error"].endswith("ValueError: boom")


LINE_BREAKERS = "\x1b[2K\r\n\x85\u2028\u2029\u202e"


def test_formatter_writes_caller_text_ascii_escaped_on_one_line() -> None:
    record = _record("no route for %s", f"/x{LINE_BREAKERS}", path=f"/x{LINE_BREAKERS}")

    line = JsonFormatter().format(record)

    assert line.isascii()
    (entry,) = [json.loads(text) for text in line.splitlines()]
    assert entry["message"] == f"no route for /x{LINE_BREAKERS}"
    assert entry["path"] == f"/x{LINE_BREAKERS}"


def test_formatter_redacts_tokens_in_the_message_the_fields_and_the_error(bearer: str) -> None:
    try:
        raise ValueError(f"bad header Authorization Bearer {bearer}")
    except ValueError:
        record = _record("refused %s", f"Bearer {METRICS_TOKEN}", path=f"/x/{bearer}")
        record.exc_info = sys.exc_info()

    line = JsonFormatter().format(record)

    assert bearer not in line and METRICS_TOKEN not in line
    entry = json.loads(line)
    assert entry["message"] == "refused Bearer [redacted]"
    assert entry["path"] == "/x/[redacted]"
    assert entry["error"].endswith("ValueError: bad header Authorization Bearer [redacted]")


# --- RequestIdFilter -------------------------------------------------------------------


def test_filter_stamps_records_with_the_request_id(app: Flask) -> None:
    record = _record()

    with app.test_request_context(headers={"X-Request-ID": SANE_ID}):
        assert RequestIdFilter(request_id).filter(record)

    assert vars(record)["requestId"] == SANE_ID


def test_filter_leaves_records_outside_a_request_alone() -> None:
    record = _record()

    assert RequestIdFilter(request_id).filter(record)

    assert not hasattr(record, "requestId")


def test_logs_imports_nothing_of_http_or_gunicorn() -> None:
    """http/ and gunicorn's logger import logs (the access line's field names); logs takes
    the request id as a function, so no package cycle runs through it."""
    tree = ast.parse(Path(logs.__file__).read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }

    assert not [name for name in imported if name.split(".")[0] in {"http", "server", "gunicorn"}]


# --- the app's fields for the access line ----------------------------------------------


def _served_environ(app: Flask, path: str, headers: dict[str, str] | None = None) -> dict:
    """The WSGI environ after the app answered, as gunicorn's access logger gets it (the
    test client hands the app a copy, so the app is called here as gunicorn calls it)."""
    environ = EnvironBuilder(path=path, headers=headers).get_environ()
    body = app(environ, lambda status, headers, exc_info=None: None)
    for _ in body:
        pass
    getattr(body, "close", lambda: None)()
    return environ


def test_the_app_hands_caller_and_route_to_the_access_line_and_logs_no_line_of_its_own(
    app: Flask, job: JobRecord, bearer: str, records: list[logging.LogRecord]
) -> None:
    environ = _served_environ(app, f"{DOWNLOAD}?id={job.id}", {"Authorization": f"Bearer {bearer}"})

    assert environ[ACCESS_FIELDS] == {"subject": "alice", "route": "download", "status": 200}
    assert records == []


def test_a_refusal_hands_no_caller_to_the_access_line(app: Flask) -> None:
    environ = _served_environ(app, f"{DOWNLOAD}?id=6A7C29DD011241DFBE1B64399283C860")

    assert environ[ACCESS_FIELDS] == {"subject": None, "route": "download", "status": 401}


def test_an_unknown_path_is_handed_on_as_unmatched(app: Flask) -> None:
    environ = _served_environ(app, "/nowhere")

    assert environ[ACCESS_FIELDS] == {"subject": None, "route": "unmatched", "status": 404}


def test_an_x_accel_range_hands_the_access_line_the_206_nginx_sends(
    make_settings: Callable[..., Settings], publish: Callable[..., JobRecord], bearer: str
) -> None:
    app = create_app(make_settings(local_delivery="x-accel"))
    job = publish()
    headers = {"Authorization": f"Bearer {bearer}", "Range": "bytes=0-9"}

    environ = _served_environ(app, f"{DOWNLOAD}?id={job.id}", headers)

    assert environ[ACCESS_FIELDS] == {"subject": "alice", "route": "download", "status": 206}


def test_an_error_logged_during_a_request_carries_its_request_id(
    job: JobRecord,
    store: Store,
    bearer: str,
    download: Download,
    monkeypatch: pytest.MonkeyPatch,
    stderr_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    _break(store, monkeypatch)

    assert download({"id": job.id}, bearer, headers={"X-Request-ID": SANE_ID}).status_code == 503

    errors = [entry for entry in stderr_lines() if entry["level"] == "error"]
    assert [entry["message"] for entry in errors] == ["report store failed: disk on fire"]
    assert errors[0]["requestId"] == SANE_ID


# --- nothing secret in the logs --------------------------------------------------------


def test_no_token_or_secret_reaches_any_log(
    job: JobRecord,
    token: Callable[..., str],
    bearer: str,
    download: Download,
    client: FlaskClient,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    records: list[logging.LogRecord],
    stderr_lines: Callable[[], list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    expired = token(f"{job.studyId}:test:REPORTING_VIEW", ttl=-60)
    forged = bearer[: bearer.rindex(".") + 1] + "c2lnbmF0dXJl"
    secrets = [SECRET, METRICS_TOKEN, bearer, expired, forged]

    download({"id": job.id}, bearer)
    download({"id": job.id}, bearer, headers={"Range": "bytes=3-9"})
    download({"id": "not-a-guid"}, bearer)
    download({"id": job.id}, expired)
    download({"id": job.id}, forged)
    download({"id": job.id}, "not.a.jwt")
    for name in ("X-Api-Key", "X-Auth-Token", "X-Request-ID", "Cookie", "Proxy-Authorization"):
        download({"id": job.id}, headers={name: bearer})
    download({"id": job.id, "access_token": bearer, "token": bearer})
    download({"id": job.id}, headers={"Authorization": f"Token {bearer}"})
    client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    client.get("/metrics", headers={"Authorization": f"Bearer {bearer}"})
    _break(store, monkeypatch)
    download({"id": job.id}, bearer)

    assert [record.getMessage() for record in records] == ["report store failed: disk on fire"]
    logged = [json.dumps(vars(record), default=str) + record.getMessage() for record in records] + [
        json.dumps(entry) for entry in stderr_lines()
    ]
    out, err = capsys.readouterr()
    for secret in secrets:
        assert not [text for text in logged if secret in text]
        assert secret not in out
        assert secret not in err


# --- gunicorn --------------------------------------------------------------------------


@pytest.fixture
def gunicorn_logger() -> Iterator[Callable[..., GunicornLogger]]:
    """Make a GunicornLogger from config settings; its handlers go when the test ends."""

    def make(**options: Any) -> GunicornLogger:
        config = Config()
        for name, value in options.items():
            config.set(name, value)
        return GunicornLogger(config)

    yield make
    for name in ("gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, "_gunicorn", False):
                logger.removeHandler(handler)


def _access(logger: GunicornLogger, status_code: int = 206, **app_fields: Any) -> None:
    response = SimpleNamespace(
        status_code=status_code,
        status="206 Partial Content",
        headers=[("Content-Type", "text/csv"), ("X-Request-ID", SANE_ID)],
        sent=10,
        response_length=10,
    )
    request = SimpleNamespace(method="GET", path=DOWNLOAD, query="", version=(1, 1), headers=[])
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": DOWNLOAD,
        "QUERY_STRING": "id=6A7C29DD011241DFBE1B64399283C860&access_token=query-secret",
        "HTTP_AUTHORIZATION": "Bearer header-secret",
        "REMOTE_ADDR": "192.0.2.7",
        **app_fields,
    }
    logger.access(response, request, environ, timedelta(seconds=1, microseconds=250))


def test_gunicorn_access_log_is_a_json_line_on_stderr(
    gunicorn_logger: Callable[..., GunicornLogger], capsys: pytest.CaptureFixture[str]
) -> None:
    logger = gunicorn_logger(accesslog="-")

    _access(logger, **{ACCESS_FIELDS: {"subject": "alice", "route": "download"}})

    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    entry = json.loads(line)
    assert entry["logger"] == "gunicorn.access"
    assert entry["message"] == "access"
    assert entry["requestId"] == SANE_ID
    assert entry["subject"] == "alice"
    assert entry["route"] == "download"
    assert entry["path"] == DOWNLOAD
    assert entry["method"] == "GET"
    assert entry["status"] == 206
    assert entry["duration"] == 1.00025
    assert entry["clientAddress"] == "192.0.2.7"
    assert "secret" not in line


def test_access_line_says_the_status_the_app_handed_on_not_the_one_nginx_got(
    gunicorn_logger: Callable[..., GunicornLogger], capsys: pytest.CaptureFixture[str]
) -> None:
    logger = gunicorn_logger(accesslog="-")

    _access(logger, status_code=200, **{ACCESS_FIELDS: {"route": "download", "status": 206}})

    assert json.loads(capsys.readouterr().err)["status"] == 206


def test_access_line_of_a_request_the_app_never_saw_has_no_caller_or_route(
    gunicorn_logger: Callable[..., GunicornLogger], capsys: pytest.CaptureFixture[str]
) -> None:
    logger = gunicorn_logger(accesslog="-")

    _access(logger)

    entry = json.loads(capsys.readouterr().err)
    assert entry["path"] == DOWNLOAD
    assert "subject" not in entry
    assert "route" not in entry


def test_gunicorn_access_log_is_silent_when_not_configured(
    gunicorn_logger: Callable[..., GunicornLogger], capsys: pytest.CaptureFixture[str]
) -> None:
    logger = gunicorn_logger()

    _access(logger)

    assert capsys.readouterr() == ("", "")


def test_gunicorn_error_log_is_json_too(
    gunicorn_logger: Callable[..., GunicornLogger], capsys: pytest.CaptureFixture[str]
) -> None:
    logger = gunicorn_logger(accesslog="-", errorlog="-")

    logger.error("worker %s timed out", 7)

    entry = json.loads(capsys.readouterr().err)
    assert entry["logger"] == "gunicorn.error"
    assert entry["level"] == "error"
    assert entry["message"] == "worker 7 timed out"


def test_gunicorn_access_line_with_hostile_path_and_subject_is_one_line(
    app: Flask,
    token: Callable[..., str],
    gunicorn_logger: Callable[..., GunicornLogger],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile = token(f"{STUDY}:test:REPORTING_VIEW", subject=f"al{LINE_BREAKERS}ice")
    environ = _served_environ(
        app, f"{DOWNLOAD}?id={'A' * 32}", {"Authorization": f"Bearer {hostile}"}
    )
    logger = gunicorn_logger(accesslog="-")

    _access(
        logger, PATH_INFO=f"{DOWNLOAD}{LINE_BREAKERS}", **{ACCESS_FIELDS: environ[ACCESS_FIELDS]}
    )

    err = capsys.readouterr().err
    assert err.isascii()
    (entry,) = [json.loads(line) for line in err.splitlines()]
    assert entry["path"] == f"{DOWNLOAD}{LINE_BREAKERS}"
    assert entry["subject"] == f"al{LINE_BREAKERS}ice"


def test_gunicorn_warning_about_a_refused_header_line_carries_no_token(
    bearer: str, gunicorn_logger: Callable[..., GunicornLogger], capsys: pytest.CaptureFixture[str]
) -> None:
    logger = gunicorn_logger(errorlog="-")

    logger.warning(
        f"Invalid request from ip=127.0.0.1: Invalid HTTP Header: 'Authorization Bearer {bearer}'"
    )

    err = capsys.readouterr().err
    assert bearer not in err
    assert json.loads(err)["message"].endswith("'Authorization Bearer [redacted]'")


@pytest.mark.parametrize(
    "error",
    [
        NoMoreData(b"X-Api-Key: s3cr3t-partial-line"),
        InvalidHeader("Authorization Basic YWxpY2U6czNjcjN0"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_gunicorn_line_given_a_refused_request_shows_its_kind_not_its_text(
    gunicorn_logger: Callable[..., GunicornLogger],
    capsys: pytest.CaptureFixture[str],
    error: Exception,
) -> None:
    logger = gunicorn_logger(errorlog="-", loglevel="debug")

    logger.debug("Ignored premature client disconnection. %s", error)

    message = json.loads(capsys.readouterr().err)["message"]
    assert message.startswith("Ignored premature client disconnection. ")
    assert message.endswith("'[withheld]'")
    assert "s3cr3t" not in message and "YWxp" not in message
