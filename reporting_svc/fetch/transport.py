"""HTTP for the fetch client: the token only to the service's own origin, refusals as types.

Redirects are followed here rather than by requests, so the rule is ours and visible: a
hop to another scheme, host or port (a presigned S3 URL) goes without ``Authorization``.
The origin is read from the URL requests will send, by urllib3's parser (which picks the
host connected to) and the standard library's, and a URL they read differently is
refused: ``http://a\\@b/`` is ``b`` to one and ``a`` to the other. A ``Location`` with a
backslash, whitespace, a control or a non-ASCII character is refused before either reads it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase
from urllib3.exceptions import HTTPError, LocationParseError
from urllib3.util import parse_url
from werkzeug.datastructures import WWWAuthenticate

from .credentials import TokenMissing, TokenSource
from .failures import AuthenticationFailed, JobFailed, Transient
from .retry import retry_after_seconds
from .verify import CHUNK

MAX_REDIRECTS = 5
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "reporting-svc-fetch"
MAX_DETAILS = 300
DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 URIs are printable ASCII without spaces; a backslash is where parsers part ways.
UNSAFE_IN_URL = re.compile(r"[^\x21-\x7e]|\\")
Origin = tuple[str, str, int | None]
# What reading a streamed body raises when the connection fails (urllib3's own, unwrapped).
STREAM_ERRORS = (requests.RequestException, HTTPError)


class NoAuth(AuthBase):
    """For any other origin: no token, and no ``.netrc`` or URL credentials added either."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class Client:
    """GETs against one service; every answer that is not a success raises a typed failure."""

    def __init__(self, base_url: str, token: TokenSource, *, timeout: float):
        self.base_url = base_url
        self.origin = connection_origin(base_url)
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset({200}),
    ) -> requests.Response:
        """GET ``path`` of the service, streamed; a status outside ``accept`` raises.

        The caller closes the response (``with client.get(...) as response``).
        """
        url = self.base_url + path
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(url, params, headers)
            if not response.is_redirect:
                if response.status_code not in accept:
                    with response:
                        raise refusal(response)
                return response
            with response:
                url = _redirect_target(url, response.headers["Location"])
            params = None  # the Location is the whole next URL
        raise JobFailed(f"more than {MAX_REDIRECTS} redirects")

    def _send(
        self, url: str, params: Mapping[str, str] | None, headers: Mapping[str, str] | None
    ) -> requests.Response:
        same_origin = connection_origin(url, params) == self.origin
        auth: AuthBase = self.token if same_origin else NoAuth()
        try:
            return self.session.get(
                url,
                params=params,
                headers=dict(headers or {}),
                auth=auth,
                stream=True,
                allow_redirects=False,
                timeout=self.timeout,
            )
        except TokenMissing as error:
            raise AuthenticationFailed(str(error)) from None
        except requests.RequestException as error:
            raise Transient(f"connection failed: {type(error).__name__}") from None


def chunks(response: requests.Response, deadline: float, late: str) -> Iterator[bytes]:
    """The body as it arrives, at most a chunk at a time; JobFailed saying ``late`` once
    ``deadline`` (a ``time.monotonic()``) has passed, however slowly the bytes trickle in."""
    while True:
        if time.monotonic() > deadline:
            raise JobFailed(late)
        chunk = response.raw.read1(CHUNK, decode_content=True)
        if not chunk:
            return
        yield chunk


def refusal(response: requests.Response) -> Exception:
    """The failure a non-success answer means: transient, the token's, or this job's."""
    status = response.status_code
    reason = f"{status} {_details(response)}".strip()
    if status in TRANSIENT_STATUSES:
        return Transient(
            reason, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
        )
    if status == 401 and not _insufficient_scope(response):
        return AuthenticationFailed(f"the server refused the token: {reason}")
    return JobFailed(reason, status=status)


def _insufficient_scope(response: requests.Response) -> bool:
    """A 401 for one job's permission (the token is fine) rather than for the token."""
    challenge = WWWAuthenticate.from_header(response.headers.get("WWW-Authenticate"))
    return challenge is not None and challenge.get("error") == "insufficient_scope"


def _details(response: requests.Response) -> str:
    """The envelope's message and details, short and on one line; nothing else of the body."""
    try:
        error: Any = response.json()["errorData"]
        text = f"{error['errorMessage']}: {error.get('details') or ''}".rstrip(": ")
    except (ValueError, KeyError, TypeError):
        return response.reason or ""
    return " ".join(str(text).split())[:MAX_DETAILS]


def connection_origin(url: str, params: Mapping[str, str] | None = None) -> Origin:
    """The scheme, host and port requests will connect to for ``url``: both parsers read
    the URL as requests prepares it, and must agree; JobFailed if they do not."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, params)
        connected = parse_url(str(prepared.url))
        split = urlsplit(str(prepared.url))
        origins = {
            _origin(connected.scheme, connected.host, connected.port),
            _origin(split.scheme, split.hostname, split.port),
        }
    except (requests.RequestException, LocationParseError, ValueError):
        raise JobFailed("a URL that cannot be read as scheme, host and port") from None
    if len(origins) != 1:
        raise JobFailed("a URL whose host urllib3 and urllib read differently")
    return origins.pop()


def _origin(scheme: str | None, host: str | None, port: int | None) -> Origin:
    scheme = (scheme or "").lower()
    host = (host or "").lower().removeprefix("[").removesuffix("]")
    return scheme, host, port or DEFAULT_PORTS.get(scheme)


def _redirect_target(url: str, location: str) -> str:
    """The next hop's URL; a ``Location`` no parser should have to guess at is refused."""
    if UNSAFE_IN_URL.search(location):
        raise JobFailed(
            "a redirect whose Location has a backslash, whitespace, a control "
            "or a non-ASCII character"
        )
    target = urljoin(url, location)
    if urlsplit(target).scheme not in ("http", "https"):
        raise JobFailed("a redirect to a URL that is not http(s)")
    return target
