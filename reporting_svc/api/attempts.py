"""Every download attempt on record (SPEC §4), from the one hook that sees each answer.

A response that sends file bytes gets a ``start`` record before its first byte and an
``end`` record when it closes; if the ``start`` (or a ``redirect``) cannot be written,
the download is refused with 503 instead. Every other answer gets one record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Response, current_app, g, request

from ..audit import AuditUnavailableError
from ..errors import AuditUnavailable, error_response
from ..http.delivery import AccelResponse, FileResponse
from ..http.response_headers import request_id
from ..metrics import track_download
from ..services import Services

log = logging.getLogger(__name__)
MAX_TEXT = 512
MAX_JOB_ID = 64


def record_attempt(response: Response) -> Response:
    """After-request hook of the download endpoint: write the attempt's record(s)."""
    services: Services = current_app.extensions["reporting_svc"]
    event = _event(response)
    fields = _fields(services, response, event)
    if event not in ("start", "redirect"):
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


def _event(response: Response) -> str:
    if response.status_code >= 400:
        return "refused"
    if response.status_code == 304:
        return "not-modified"
    if response.status_code == 302:
        return "redirect"
    if request.method == "HEAD":
        return "head"
    if request.method != "GET":
        return "refused"
    return "start"


def _fields(services: Services, response: Response, event: str) -> dict[str, Any]:
    job = g.get("job")
    principal = g.get("principal")
    requested = request.args.get("id") or None
    return {
        "event": event,
        "requestId": request_id(),
        "subject": principal.subject if principal else None,
        "clientAddress": request.remote_addr,
        "userAgent": request.user_agent.string[:MAX_TEXT] or None,
        "jobId": job.id if job else requested and requested[:MAX_JOB_ID],
        "studyId": job.studyId if job else None,
        "mode": job.mode if job else None,
        "reportName": job.reportName if job else None,
        "status": response.status_sent
        if isinstance(response, AccelResponse)
        else response.status_code,
        "delivery": services.delivery.name,
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
