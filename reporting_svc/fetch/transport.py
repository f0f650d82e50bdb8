"""HTTP for the fetch client: the token only to the service's own origin, refusals as types.

Redirects are followed here rather than by requests, so the rule is ours and visible: a
hop to another scheme, host or port (a presigned S3 URL) goes without ``Authorization``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from werkzeug.datastructures import WWWAuthenticate

from .credentials import TokenMissing, TokenSource
from .failures import AuthenticationFailed, JobFailed, Transient
from .retry import retry_after_seconds

MAX_REDIRECTS = 5
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "reporting-svc-fetch"
MAX_DETAILS = 300


class Client:
    """GETs against one service; every answer that is not a success raises a typed failure."""

    def __init__(self, base_url: str, token: TokenSource, *, timeout: float):
        self.base_url = base_url
        self.origin = _origin(base_url)
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
                url = urljoin(url, response.headers["Location"])
            if urlsplit(url).scheme not in ("http", "https"):
                raise JobFailed("a redirect to a URL that is not http(s)")
            params = None  # the Location is the whole next URL
        raise JobFailed(f"more than {MAX_REDIRECTS} redirects")

    def _send(
        self, url: str, params: Mapping[str, str] | None, headers: Mapping[str, str] | None
    ) -> requests.Response:
        auth = self.token if _origin(url) == self.origin else None
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


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default
