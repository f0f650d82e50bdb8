"""Sending a job's file: one delivery class per mode, chosen once at start-up.

Every delivery first asks ``conditional.decide`` what to answer from the record alone
(304, 416, 206 or the whole file); only then is the store asked for exactly those bytes.
A delivery uses only the ``Store`` interface: every store reads byte ranges, and a mode
that needs more (a path nginx can serve, a presigned URL) names the ``Offer`` it needs,
so a store that lacks it is refused at start-up. ``x-accel`` hands nginx a path when the
store offers one, else a presigned URL to relay.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

from flask import Request, Response
from werkzeug.wsgi import wrap_file

from ..errors import ReportFileUnavailable
from ..settings import Settings, SettingsError
from ..storage import Store
from ..storage.base import FileMissing, Offer
from ..storage.record import JobRecord
from .admission import Admission
from .attachment import content_disposition
from .bodies import TrackedBody
from .conditional import Answer, decide, has_preconditions
from .headers import VALIDATOR_HEADERS
from .representation import file_headers, validators
from .slots import HostSlots

BLOCK_SIZE = 1024 * 1024
MISMATCH = "The report file does not match its record"
# The S3 relay's internal location under the x-accel prefix, and the headers that tell
# it what to fetch (config/nginx.conf reads them as $upstream_http_x_reporting_svc_s3_*).
RELAY_LOCATION = "s3"
RELAY_URL_HEADER = "X-Reporting-Svc-S3-Url"
RELAY_RANGE_HEADER = "X-Reporting-Svc-S3-Range"


class FileResponse(Response):
    """A response that sends file bytes itself; ``body`` reports what it sent on close."""

    def __init__(
        self, body: TrackedBody, status: int, headers: dict[str, str], wsgi: Iterable[bytes]
    ):
        super().__init__(wsgi, status=status, headers=headers, direct_passthrough=True)
        self.body = body


class AccelResponse(Response):
    """An X-Accel-Redirect answer; ``status_sent`` is what nginx will send (200 or 206)."""

    def __init__(self, status_sent: int, headers: dict[str, str]):
        super().__init__(status=200, headers=headers)
        self.status_sent = status_sent


def status_sent(response: Response) -> int:
    """The status the client receives: nginx's for an x-accel answer (a 206 goes to nginx
    as a 200), the response's own otherwise. Trail, metrics and access log all use it."""
    return response.status_sent if isinstance(response, AccelResponse) else response.status_code


class Delivery(ABC):
    """Answers a granted download of one job: the conditional decision, then the bytes."""

    name: str
    needs: ClassVar[frozenset[Offer]] = frozenset()

    def __init__(self, store: Store):
        missing = self.needs - store.offers
        if missing:
            wanted = ", ".join(sorted(offer.value for offer in missing))
            raise SettingsError(f"delivery {self.name} needs a store that offers {wanted}")
        self.store = store

    def respond(self, record: JobRecord, request: Request, subject: str) -> Response:
        """The answer to ``subject``'s granted request; its bytes count against its share."""
        answer = decide(request, record)
        if answer.status == 304:
            return Response(status=304, headers=validators(record))
        headers = file_headers(record, answer)
        if request.method == "HEAD":
            return self.head(record, headers)
        return self.send(record, answer, headers, request, subject)

    def head(self, record: JobRecord, headers: dict[str, str]) -> Response:
        """A full GET's status and headers; the store is checked, the file is not read."""
        self.check(record)
        return Response(status=200, headers=headers)

    def check(self, record: JobRecord) -> None:
        """Raise FileMissing or ReportFileUnavailable unless the file matches the record."""
        size = self.store.size_of(record)
        if size is None:
            raise FileMissing(record.id)
        if size != record.size:
            raise ReportFileUnavailable(MISMATCH)

    @abstractmethod
    def send(
        self,
        record: JobRecord,
        answer: Answer,
        headers: dict[str, str],
        request: Request,
        subject: str,
    ) -> Response:
        """Answer a GET with the bytes of ``answer``."""


class StreamDelivery(Delivery):
    """The worker sends the span through the WSGI file wrapper, from any store.

    Under gunicorn a local file goes by sendfile; a body without a descriptor (S3's) is
    read in ``block_size`` blocks. ``name`` is what the audit trail calls the mode. Each
    body holds one of the ``admission``'s download slots until it closes; past them a
    download is refused at once, before the store is asked.
    """

    def __init__(
        self, store: Store, block_size: int, admission: Admission, *, name: str = "stream"
    ):
        self.name = name
        super().__init__(store)
        self.block_size = block_size
        self.admission = admission

    def send(
        self,
        record: JobRecord,
        answer: Answer,
        headers: dict[str, str],
        request: Request,
        subject: str,
    ) -> Response:
        release = self.admission.admit(subject)
        try:
            stored = self.store.open_range(record, answer.start, answer.length)
            if stored.size != record.size:
                stored.body.close()
                raise ReportFileUnavailable(MISMATCH)
            body = TrackedBody(stored.body, answer.start, answer.length, release=release)
            wrapped = wrap_file(request.environ, body, self.block_size)  # type: ignore[arg-type]
        except BaseException:
            release()
            raise
        return FileResponse(body, answer.status, headers, wrapped)


class AccelDelivery(StreamDelivery):
    """Behind nginx: the service decides, nginx sends the bytes (``X-Accel-Redirect``).

    The whole file goes through an internal location with ranges switched off, so a
    stale If-Range or a multi-range request cannot make nginx send a part; a 206 goes
    through one where nginx applies the client's (already checked) single range.
    """

    needs = frozenset({Offer.INTERNAL_PATH})

    def __init__(self, store: Store, prefix: str, admission: Admission):
        super().__init__(store, BLOCK_SIZE, admission, name="x-accel")
        self.prefix = "/" + prefix.strip("/") + "/"

    def send(
        self,
        record: JobRecord,
        answer: Answer,
        headers: dict[str, str],
        request: Request,
        subject: str,
    ) -> Response:
        if has_preconditions(request):  # nginx would evaluate them again, wrongly
            return super().send(record, answer, headers, request, subject)
        return self.hand_over(record, answer, headers)

    def hand_over(self, record: JobRecord, answer: Answer, headers: dict[str, str]) -> Response:
        """The answer nginx completes: the service's headers and where nginx gets the bytes."""
        self.check(record)
        headers = {k: v for k, v in headers.items() if k not in ("Content-Length", "Content-Range")}
        headers.update(self.target(record, answer))
        return AccelResponse(answer.status, headers)

    def target(self, record: JobRecord, answer: Answer) -> dict[str, str]:
        """The headers that send nginx to the bytes of ``answer``."""
        kind = "range" if answer.status == 206 else "full"
        return {"X-Accel-Redirect": f"{self.prefix}{kind}/{self.store.internal_path(record)}"}


class RelayDelivery(AccelDelivery):
    """S3 behind nginx: nginx fetches the object with a presigned URL and relays it.

    The URL lives ``expires`` seconds, enough for nginx to start the fetch. nginx sends S3
    only the range the service decided (none for a whole file), never the client's
    headers, so S3 evaluates nothing of its own and the service's answer stands as is;
    requests with preconditions are relayed too. The two headers below reach nginx only:
    it drops them with the rest of this answer when it follows the redirect.
    """

    needs = frozenset({Offer.PRESIGNED_URL})

    def __init__(self, store: Store, prefix: str, admission: Admission, expires: int):
        super().__init__(store, prefix, admission)
        self.expires = expires

    def send(
        self,
        record: JobRecord,
        answer: Answer,
        headers: dict[str, str],
        request: Request,
        subject: str,
    ) -> Response:
        return self.hand_over(record, answer, headers)

    def target(self, record: JobRecord, answer: Answer) -> dict[str, str]:
        url = self.store.presigned_url(record, self.expires, content_disposition(record.fileName))
        headers = {"X-Accel-Redirect": f"{self.prefix}{RELAY_LOCATION}", RELAY_URL_HEADER: url}
        if answer.status == 206:
            headers[RELAY_RANGE_HEADER] = f"bytes={answer.start}-{answer.stop - 1}"
        return headers


class RedirectDelivery(StreamDelivery):
    """A 302 to a short-lived presigned URL that answers with the same type and disposition.

    S3 applies a plain Range itself when the client follows the redirect. It knows nothing
    of our ETag, though, and evaluates If-Modified-Since even when If-None-Match fails, so
    a request with validators, or whose Range must be ignored (several ranges, an unknown
    unit), is streamed by the service instead: the same answer as in every other mode.
    """

    needs = frozenset({Offer.PRESIGNED_URL})

    def __init__(self, store: Store, block_size: int, admission: Admission, expires: int):
        super().__init__(store, block_size, admission, name="redirect")
        self.expires = expires

    def head(self, record: JobRecord, headers: dict[str, str]) -> Response:
        return self.redirect(record)

    def send(
        self,
        record: JobRecord,
        answer: Answer,
        headers: dict[str, str],
        request: Request,
        subject: str,
    ) -> Response:
        ignored_range = answer.status == 200 and "Range" in request.headers
        if ignored_range or any(name in request.headers for name in VALIDATOR_HEADERS):
            return super().send(record, answer, headers, request, subject)
        return self.redirect(record)

    def redirect(self, record: JobRecord) -> Response:
        self.check(record)
        url = self.store.presigned_url(record, self.expires, content_disposition(record.fileName))
        return Response(status=302, headers={"Location": url})


def make_delivery(settings: Settings, store: Store) -> Delivery:
    """The delivery mode the settings choose, for whichever store they built."""
    mode = settings.delivery
    slots = HostSlots(
        settings.slots_path, settings.host_download_limit, settings.subject_download_limit
    )
    admission = Admission(slots)
    relayed = Offer.INTERNAL_PATH not in store.offers and Offer.PRESIGNED_URL in store.offers
    if mode == "x-accel" and relayed:
        return RelayDelivery(
            store, settings.x_accel_prefix, admission, settings.x_accel_presign_expires
        )
    if mode == "x-accel":
        return AccelDelivery(store, settings.x_accel_prefix, admission)
    if mode == "redirect":
        return RedirectDelivery(store, settings.s3_chunk_size, admission, settings.presign_expires)
    if mode == "proxy":
        return StreamDelivery(store, settings.s3_chunk_size, admission, name="proxy")
    return StreamDelivery(store, BLOCK_SIZE, admission)
