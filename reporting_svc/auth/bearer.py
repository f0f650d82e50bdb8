"""Reading ``Authorization: Bearer <token>`` (RFC 6750 §2.1): the one parser of bearer tokens."""

from __future__ import annotations

from flask import Request


def bearer_token(request: Request) -> str | None:
    """The token the request carries, or None when it carries no Bearer credentials.

    Werkzeug parses the header, the scheme in any letter case (RFC 9110 §11.1). Bearer
    credentials that are not a token (``Bearer a=b``, or nothing after the scheme) give the
    empty token: something was sent, and it opens nothing.
    """
    credentials = request.authorization
    if credentials is None or credentials.type != "bearer":
        return None
    return credentials.token or ""
