"""Example auth hooks named in settings by the hook tests: an API key and allow-test rules."""

from __future__ import annotations

from collections.abc import Callable

from flask import Request

from reporting_svc.auth import Principal
from reporting_svc.errors import Unauthenticated
from reporting_svc.settings import Settings
from reporting_svc.storage import JobRecord

API_KEY_HEADER = "X-Api-Key"
API_KEY = "example-api-key"


def make_authenticator(settings: Settings) -> Callable[[Request], Principal]:
    """Accept one fixed API key in a custom header instead of a bearer token."""

    def authenticate(request: Request) -> Principal:
        if request.headers.get(API_KEY_HEADER) != API_KEY:
            raise Unauthenticated("an API key is required", token_sent=False)
        return Principal("api-key-client", ())

    return authenticate


def make_authoriser(settings: Settings) -> Callable[[Principal, JobRecord], bool]:
    """Open every job in test mode, whatever the caller's grants; nothing else."""

    def authorise(principal: Principal, record: JobRecord) -> bool:
        return record.mode == "test"

    return authorise


def make_no_drafts_authoriser(settings: Settings) -> Callable[[Principal, JobRecord], bool]:
    """The caller's grants as usual, but never a report whose name starts with ``Draft``:
    a yes/no rule with no ``permissions``, so the download list asks it run by run."""

    def authorise(principal: Principal, record: JobRecord) -> bool:
        if record.reportName.startswith("Draft"):
            return False
        return record.requiredPermission in principal.permissions(record.scope, record.mode)

    return authorise


class OnlyTestModeAuthoriser:
    """Every job in test mode for any caller and nothing else, whatever its grants: for
    downloads and, through ``may_list``, for the download list alike."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self, principal: Principal, record: JobRecord) -> bool:
        return record.mode == "test"

    def may_list(self, principal: Principal, scope: str, mode: str) -> bool:
        return mode == "test"
