"""The audit contract of an endpoint (docs/api.md §4), declared on its view with ``@audited``.

The decorator runs the view, turns whatever it raised into the answer the error handlers
give, and puts that answer on record before it leaves the view. A record the answer
depends on (a ``start`` before the first byte, a ``redirect``, a ``head``, a listing, and
any other answer to a caller granted the job: a 304, 410, 412, 416 or filter's 404) is
written first; when it cannot be, the answer becomes the 503 of ``AuditUnavailable``,
still inside the view, so the common headers, metrics and log line apply to it like to
any other answer. A response that sends bytes gets its ``end`` record when it closes.

Views take an ``Attempt`` and fill in what they learn (who asked, which job or scope), so
the record never depends on request-global state.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from flask import Request, Response, current_app, g, request

from ..audit import AuditUnavailableError
from ..audit.trail import SERVICE_REFUSALS
from ..auth import Principal
from ..errors import AuditUnavailable, error_response
from ..http.delivery import FileResponse, status_sent
from ..http.response_headers import request_id
from ..metrics import track_download
from ..services import Services
from ..storage import JobRecord

log = logging.getLogger(__name__)
MAX_TEXT = 512
MAX_JOB_ID = 64
# Events whose record must be written before the answer leaves: each reveals a file, a
# URL to one, a file's description or a list of jobs. So does every other answer to a
# caller granted the job (its ETag in a 304, its size in a 416, a withdrawal's reason in a
# 410), unless it is the service's own refusal (5xx), which tells nothing about the job.
# Only refusals before the grant (400, 401, 404 of an unknown job, 405) answer with their
# own status when their record cannot be written.
AWAITED_EVENTS = frozenset({"start", "redirect", "head", "list"})


@dataclass
class Attempt:
    """What the view learned about the request, for its record; ``granted``: the caller
    may see the job, so every answer from then on tells it something about the job."""

    principal: Principal | None = None
    job: JobRecord | None = None
    study_id: str | None = None
    mode: str | None = None
    granted: bool = False

    @property
    def subject(self) -> str | None:
        return self.principal.subject if self.principal else None


EventOf = Callable[[Request, Response], str]
P = ParamSpec("P")
View = Callable[Concatenate[Attempt, P], Any]


def audited(event_of: EventOf, *, names_delivery: bool = False) -> Callable[[View[P]], Any]:
    """Put every answer of the view on record; ``event_of`` names the event of an answer.

    ``names_delivery``: the records name the delivery mode (download endpoints).
    """

    def decorate(view: View[P]) -> Callable[P, Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
            attempt = Attempt()
            response = _answer(view, attempt, *args, **kwargs)
            g.principal = attempt.principal
            return _on_record(attempt, response, event_of(request, response), names_delivery)

        return wrapper

    return decorate


def download_event(req: Request, response: Response) -> str:
    """The event of an answer on a download URL (docs/api.md §4)."""
    status = response.status_code
    if status >= 400 or req.method not in ("GET", "HEAD"):
        return "refused"
    if status == 304:
        return "not-modified"
    if status == 302:
        return "redirect"
    return "head" if req.method == "HEAD" else "start"


def listing_event(req: Request, response: Response) -> str:
    """The event of an answer of the download list (docs/api.md §4, §5)."""
    return "list" if response.status_code == 200 else "refused"


def _answer(view: View[P], attempt: Attempt, *args: P.args, **kwargs: P.kwargs) -> Response:
    """The view's response, or the error handlers' answer to what it raised."""
    try:
        return current_app.make_response(view(attempt, *args, **kwargs))
    except Exception as error:  # every error is answered by the one handler
        return current_app.make_response(current_app.handle_user_exception(error))


def _on_record(attempt: Attempt, response: Response, event: str, names_delivery: bool) -> Response:
    services: Services = current_app.extensions["reporting_svc"]
    fields = _fields(services, attempt, response, event, names_delivery)
    if not _awaited(attempt, response, event):
        _write_quietly(services, fields)
        return response
    try:
        services.audit.write(**fields)
    except AuditUnavailableError:
        response.close()
        return error_response(AuditUnavailable())
    if event == "start":
        _end_on_close(services, response, fields)
    return response


def _awaited(attempt: Attempt, response: Response, event: str) -> bool:
    """Whether the answer may leave only once its record is written (see AWAITED_EVENTS)."""
    if event in AWAITED_EVENTS:
        return True
    return attempt.granted and response.status_code < SERVICE_REFUSALS


def _fields(
    services: Services, attempt: Attempt, response: Response, event: str, names_delivery: bool
) -> dict[str, Any]:
    job = attempt.job
    requested = (request.args.get("id") or None) if names_delivery else None
    return {
        "event": event,
        "requestId": request_id(),
        "subject": attempt.subject,
        "clientAddress": request.remote_addr,
        "userAgent": request.user_agent.string[:MAX_TEXT] or None,
        "jobId": job.id if job else requested and requested[:MAX_JOB_ID],
        "studyId": job.studyId if job else attempt.study_id,
        "mode": job.mode if job else attempt.mode,
        "reportName": job.reportName if job else None,
        "status": status_sent(response),
        "delivery": services.delivery.name if names_delivery else None,
        "sha256": job.sha256 if job else None,
    }


def _end_on_close(services: Services, response: Response, start: dict[str, Any]) -> None:
    """Arrange the ``end`` record (and the download's metrics); with x-accel nginx sends
    the bytes, so their count is nginx's to log (its access log has the same requestId)."""
    if isinstance(response, FileResponse):
        body = response.body
        finished = track_download(services.delivery.name, g.get("started", time.perf_counter()))

        def ended(sent: int) -> None:
            end = {**start, "event": "end", "bytesSent": sent, "complete": sent == body.length}
            _write_quietly(services, end)
            finished(sent)

        body.on_close = ended
    else:
        response.call_on_close(lambda: _write_quietly(services, {**start, "event": "end"}))


def _write_quietly(services: Services, fields: dict[str, Any]) -> None:
    """Write a record whose failure cannot stop anything any more; the trail logs it."""
    try:
        services.audit.write(**fields)
    except AuditUnavailableError:
        log.error("audit %s record lost for request %s", fields["event"], fields["requestId"])
