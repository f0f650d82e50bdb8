"""webargs parsing of query strings into schemas, with the API's two 400 answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import marshmallow as ma
from flask import Request
from webargs.flaskparser import FlaskParser

from ..errors import InsufficientParameters, InvalidParameters
from .schemas import MISSING


class QueryParser(FlaskParser):
    """Reads each known parameter once: a repeated one is invalid, never silently picked."""

    DEFAULT_LOCATION = "query"

    def load_querystring(self, req: Request, schema: ma.Schema) -> Any:
        names = [fld.data_key or name for name, fld in schema.fields.items()]
        repeated = [name for name in names if len(req.args.getlist(name)) > 1]
        if repeated:
            raise ma.ValidationError({name: ["must be given at most once"] for name in repeated})
        return req.args.to_dict(flat=True)

    def handle_error(
        self,
        error: ma.ValidationError,
        req: Request,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        messages = error.messages if isinstance(error.messages, dict) else {"query": error.messages}
        messages = messages.get(self.DEFAULT_LOCATION, messages)
        missing = {name: rules for name, rules in messages.items() if rules == [MISSING]}
        if missing:
            raise InsufficientParameters(_describe(missing))
        raise InvalidParameters(_describe(messages))


def _describe(messages: Mapping[str, Any]) -> str:
    """``name: rule`` for each parameter that broke one, in a stable order."""
    parts = []
    for name in sorted(messages):
        rules = messages[name]
        text = "; ".join(rules) if isinstance(rules, list) else str(rules)
        parts.append(f"{name}: {text}")
    return "; ".join(parts)


parser = QueryParser()
