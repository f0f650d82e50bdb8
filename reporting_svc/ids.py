"""Report job and study identifiers: GUIDs of 32 hex digits, normalised one way everywhere."""

import re

GUID_PATTERN = r"[0-9A-Fa-f]{32}"
DASHED_GUID_PATTERN = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_GUID = re.compile(GUID_PATTERN)
_DASHED = re.compile(DASHED_GUID_PATTERN)

GUID_RULE = "must be a GUID of 32 hexadecimal digits"


def normalise_guid(value: str) -> str:
    """Return the 32 upper-case hex digits of a GUID, or raise ValueError.

    Every identifier that later becomes part of a storage key passes through here first,
    so no other character (``/``, ``..``, NUL, newline) can ever reach a path or key.
    """
    if _DASHED.fullmatch(value):
        value = value.replace("-", "")
    if not _GUID.fullmatch(value):
        raise ValueError(GUID_RULE)
    return value.upper()
