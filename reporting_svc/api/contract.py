"""What an endpoint answers, declared on its view; the OpenAPI document is built from it.

As apifairy's and flask-smorest's decorators do, each decorator records one part of the
view's contract (its operations and query schema, the request headers it reads, the
answers and refusals it gives) on the view function itself, where ``api/openapi.py``
finds it by walking the app's URL map. Decorators read top to bottom in document order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from marshmallow import Schema, fields, validate

from ..http import headers as h

View = TypeVar("View", bound=Callable[..., Any])
_ATTRIBUTE = "_contract"


@dataclass(frozen=True)
class Json:
    """A JSON body of ``schema``, known as ``name`` among the document's schemas."""

    name: str
    schema: type[Schema]


# The file's bytes, of whatever type the record names.
FILE: Literal["file"] = "file"
Body = Json | Literal["file"]


class ErrorDataSchema(Schema):
    """What went wrong: ``REPT_`` plus the status, a fixed message per kind, details or null."""

    errorCode = fields.String(required=True, metadata={"pattern": "^REPT_[0-9]{3}$"})  # noqa: N815
    errorMessage = fields.String(required=True)  # noqa: N815
    details = fields.String(required=True, allow_none=True)


class ErrorSchema(Schema):
    """The envelope of every error, as ``errors.envelope`` builds it."""

    status = fields.String(required=True, validate=validate.OneOf(["error"]))
    result = fields.Raw(required=True, metadata={"type": "null"})
    errorData = fields.Nested(ErrorDataSchema, required=True)  # noqa: N815


# The body of every refusal.
ERROR = Json("Error", ErrorSchema)
# The headers the error handlers (errors.py) add to a refusal of each status, whichever
# view refuses: the ones always there, then the ones that may be absent.
REFUSAL_HEADERS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    401: ((h.WWW_AUTHENTICATE,), ()),
    416: ((h.CONTENT_RANGE,), ()),
    429: ((), (h.RETRY_AFTER,)),
    503: ((), (h.RETRY_AFTER,)),
}


@dataclass(frozen=True)
class Outcome:
    """One status the view answers, with the headers it always (``headers``) or may
    (``optional``) carry; ``methods`` None: every documented method answers it."""

    status: int
    description: str
    body: Body | None = None
    headers: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    methods: frozenset[str] | None = None

    def answers(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass(frozen=True)
class RequestHeader:
    """A header the view reads; ``methods`` None: whichever method is used."""

    name: str
    methods: frozenset[str] | None = None

    def read_on(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass
class Contract:
    """Everything declared on one view: operation ids by method (``get``, ``head``)."""

    operations: dict[str, str] = field(default_factory=dict)
    query: type[Schema] | None = None
    request_headers: list[RequestHeader] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def contract_of(view: Callable[..., Any]) -> Contract | None:
    """The contract declared on the view, or None for a view that declares none."""
    found: Contract | None = getattr(view, _ATTRIBUTE, None)
    return found


def operation(*, query: type[Schema] | None = None, **operation_ids: str) -> Callable[[View], View]:
    """The methods the document states, each with its operation id, and the query schema
    the view parses (its fields are the query parameters)."""

    def record(contract: Contract) -> None:
        contract.operations = {method.lower(): name for method, name in operation_ids.items()}
        contract.query = query

    return _declaring(record)


def reads(*names: str, methods: Collection[str] | None = None) -> Callable[[View], View]:
    """Request headers the view reads, as their names (``http/headers.py``)."""
    only = _methods(methods)

    def record(contract: Contract) -> None:
        contract.request_headers[:0] = [RequestHeader(name, only) for name in names]

    return _declaring(record)


def answers(
    status: int,
    description: str,
    *,
    body: Body | None = None,
    headers: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    methods: Collection[str] | None = None,
) -> Callable[[View], View]:
    """An answer that is not an error: its body, and the headers it always (``headers``)
    or may (``optional``) carry."""
    outcome = Outcome(status, description, body, headers, optional, _methods(methods))
    return _declaring(lambda contract: contract.outcomes.insert(0, outcome))


def refuses(
    descriptions: Mapping[int, str], *, methods: Collection[str] | None = None
) -> Callable[[View], View]:
    """Errors the view answers, in the envelope, each status with what it means here and
    the headers the error handlers add to it."""
    only = _methods(methods)
    refusals = [
        Outcome(status, description, ERROR, *REFUSAL_HEADERS.get(status, ((), ())), only)
        for status, description in descriptions.items()
    ]

    def record(contract: Contract) -> None:
        contract.outcomes[:0] = refusals

    return _declaring(record)


def _declaring(record: Callable[[Contract], None]) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        contract = contract_of(view)
        if contract is None:
            contract = Contract()
            setattr(view, _ATTRIBUTE, contract)
        record(contract)
        return view

    return decorate


def _methods(methods: Collection[str] | None) -> frozenset[str] | None:
    return None if methods is None else frozenset(method.lower() for method in methods)
