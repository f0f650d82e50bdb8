"""Where the fetch client's bearer token comes from: never the command line that ``ps`` shows."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from requests import PreparedRequest
from requests.auth import AuthBase

TOKEN_VARIABLE = "REPORTING_SVC_TOKEN"  # noqa: S105 - the name of a variable, not a token


class TokenMissing(Exception):
    """Neither the variable nor a readable token file gives a token."""


class TokenSource(AuthBase):
    """A token file re-read before each request (so a rotating file works), or the variable.

    As a requests ``AuthBase`` it is attached only to requests for the service's own host,
    and it stops requests from replacing the token with ``.netrc`` credentials.
    """

    def __init__(self, token_file: Path | None, environ: Mapping[str, str] | None = None):
        self.token_file = token_file
        self.environ = os.environ if environ is None else environ

    def read(self) -> str:
        """The current token; raises TokenMissing with what to do about it, never naming the
        file: a token given as ``--token-file TOKEN`` by mistake would be printed."""
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as error:
                raise TokenMissing(f"cannot read the --token-file: {error.strerror}") from None
            if not token:
                raise TokenMissing("the --token-file is empty")
            return token
        token = self.environ.get(TOKEN_VARIABLE, "").strip()
        if not token:
            raise TokenMissing(f"no token: set {TOKEN_VARIABLE} or pass --token-file")
        return token

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.read()}"
        return request
