"""The audit contract of an endpoint (docs/api.md §4), declared on its view with ``@audited``.

The decorator runs the view, turns whatever it raised into the envelope the app's error
handler gives (``errors.response_for``), and puts that answer on record before it leaves
the view. A record the answer depends on (audit/policy.py says which) is written first;
when it cannot be, the answer becomes the 503 of ``AuditUnavailable``, still inside the
view, so the common headers, metrics and log line apply to it like to any other answer.
An answer whose bytes the worker sends gets its ``end`` record (and its download
metrics) when its body closes; any other ``start`` gets its ``end`` when the response
closes (with x-accel nginx sends the bytes, so their count is nginx's to log).

Views take an ``Attempt`` and fill in what they learn (who asked, which job or scope), and
return a ``Delivered`` value (the response and the status it is sent with), so neither
the record nor the metrics and access line depend on request-global state: the decorator
hands them an ``Observed`` value (http/observe.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from flask import Request, Response, current_app, request

from ..audit import AuditUnavailableError
from ..audit.policy import answer_waits
from ..auth import Principal
from ..errors import AuditUnavailable, error_response, response_for
from ..http.delivered import Delivered
from ..http.observe import Observed, observed_by_view
from ..http.response_headers import request_id
from ..metrics import track_download
from ..services import Services
from ..storage import JobRecord

log = logging.getLogger(__name__)
MAX_TEXT = 512
MAX_JOB_ID = 64


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


EventOf = Callable[[Request, int], str]
P = ParamSpec("P")
View = Callable[Concatenate[Attempt, P], Delivered]


def audited(event_of: EventOf, *, names_delivery: bool = False) -> Callable[[View[P]], Any]:
    """Put every answer of the view on record; ``event_of`` names the event of an answer
    from the request and the status it is sent with.

    ``names_delivery``: the records name the delivery mode (download endpoints).
    """

    def decorate(view: View[P]) -> Callable[P, Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
            started = time.perf_counter()
            attempt = Attempt()
            delivered = _answer(view, attempt, *args, **kwargs)
            event = event_of(request, delivered.status)
            delivered = _on_record(attempt, delivered, event, names_delivery, started)
            observed_by_view(request.environ, Observed(attempt.subject, delivered.status))
            return delivered.response

        return wrapper

    return decorate


def download_event(req: Request, status: int) -> str:
    """The event of an answer on a download URL (docs/api.md §4)."""
    if status >= 400 or req.method not in ("GET", "HEAD"):
        return "refused"
    if status == 304:
        return "not-modified"
    if status == 302:
        return "redirect"
    return "head" if req.method == "HEAD" else "start"


def listing_event(req: Request, status: int) -> str:
    """The event of an answer of the download list (docs/api.md §4, §5)."""
    return "list" if status == 200 else "refused"


def _answer(view: View[P], attempt: Attempt, *args: P.args, **kwargs: P.kwargs) -> Delivered:
    """The view's answer, or the envelope for what it raised."""
    try:
        return view(attempt, *args, **kwargs)
    except Exception as error:  # every error is answered as the app's handler answers it
        return Delivered.answer(response_for(error))


def _on_record(
    attempt: Attempt, delivered: Delivered, event: str, names_delivery: bool, started: float
) -> Delivered:
    services: Services = current_app.extensions["reporting_svc"]
    fields = _fields(services, attempt, delivered.status, event, names_delivery)
    if not answer_waits(event, delivered.status, granted=attempt.granted):
        _write_quietly(services, fields)
        return delivered
    try:
        services.audit.write(**fields)
    except AuditUnavailableError:
        delivered.response.close()
        return Delivered.answer(error_response(AuditUnavailable()))
    if event == "start":
        _end_on_close(services, delivered, fields, started)
    return delivered


def _fields(
    services: Services, attempt: Attempt, status: int, event: str, names_delivery: bool
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
        "status": status,
        "delivery": services.delivery.name if names_delivery else None,
        "sha256": job.sha256 if job else None,
    }


def _end_on_close(
    services: Services, delivered: Delivered, start: dict[str, Any], started: float
) -> None:
    """Arrange the ``end`` record: with the bytes sent (and the download's metrics, timed
    from ``started``) when the worker sends the body, else when the response closes."""
    body = delivered.body
    if body is None:
        end = {**start, "event": "end"}
        delivered.response.call_on_close(lambda: _write_quietly(services, end))
        return
    length = body.length
    finished = track_download(services.delivery.name, started)

    def ended(sent: int) -> None:
        end = {**start, "event": "end", "bytesSent": sent, "complete": sent == length}
        _write_quietly(services, end)
        finished(sent)

    body.when_closed(ended)


def _write_quietly(services: Services, fields: dict[str, Any]) -> None:
    """Write a record whose failure cannot stop anything any more; the trail logs it."""
    try:
        services.audit.write(**fields)
    except AuditUnavailableError:
        log.error("audit %s record lost for request %s", fields["event"], fields["requestId"])
