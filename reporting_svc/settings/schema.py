"""Each setting's type, declared as a marshmallow field, and the conversion of raw values.

The environment gives text and the settings file TOML values; the schema turns either into
the field's type. It is generated from the ``Settings`` fields, so a field whose type has
no declared conversion fails at import rather than being read as text. Only loading imports
it: marshmallow is the server extra's, and the fetch client imports this package without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError
from marshmallow import fields as kinds

from .errors import SettingsError
from .model import PREFIX, SETTABLE


class Text(kinds.String):
    """Text without the blanks around it; a path given as one (tests pass paths) is its text."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = os.fspath(value) if isinstance(value, os.PathLike) else value
        return super()._deserialize(text, attr, data, **kwargs).strip()


class FilePath(kinds.Field[Path]):
    """A path; a relative one is taken inside the deployment's home (loading.py)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Path:
        return Path(Text().deserialize(value))


class WholeNumber(kinds.Integer):
    """A whole number, from a TOML integer or its digits; ``1.5`` is none."""

    def _format_num(self, value: Any) -> int:
        return int(str(value))


class Switch(kinds.Boolean):
    """true/false, yes/no, on/off or 1/0, in any case."""

    def __init__(self, **kwargs: Any):
        super().__init__(
            truthy={"1", "true", "yes", "on"}, falsy={"0", "false", "no", "off"}, **kwargs
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        return super()._deserialize(str(value).strip().lower(), attr, data, **kwargs)


class Names(kinds.Field[tuple[str, ...]]):
    """A list: a TOML array, or comma-separated text; blank items are dropped."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        return tuple(str(item).strip() for item in items if str(item).strip())


# Each type a Settings field may have, its field, and what a refusal calls it.
KINDS: dict[str, tuple[type[kinds.Field[Any]], str]] = {
    "str": (Text, "text"),
    "Path": (FilePath, "a path"),
    "int": (WholeNumber, "a whole number"),
    "bool": (Switch, "a boolean (true or false)"),
    "tuple[str, ...]": (Names, "a list"),
}
SCHEMA = Schema.from_dict({name: KINDS[kind][0]() for name, kind in SETTABLE.items()})()


def convert(raw: Mapping[str, object]) -> dict[str, Any]:
    """The raw values of settable fields as their types; the first that cannot be is refused
    by name. Other keys (a derived field among a test's overrides) are left out."""
    try:
        return dict(SCHEMA.load({name: raw[name] for name in SETTABLE if name in raw}))
    except ValidationError as error:
        name = next(name for name in SETTABLE if name in error.messages_dict)
        kind = KINDS[SETTABLE[name]][1]
        raise SettingsError(f"{PREFIX}{name.upper()} must be {kind}, not {raw[name]!r}") from None
