"""A completed report job's record (docs/api.md §2), as stored beside its file."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

COMPLETED = "COMPLETED"
DEFAULT_PERMISSION = "REPORTING_VIEW"
MODES = ("test", "active", "training")
TENANT_SCOPE = "tenant"
MODE_RULE = f"must be one of {', '.join(MODES)}"
MAX_REPORT_NAME = 255
REPORT_NAME_RULE = f"must be 1 to {MAX_REPORT_NAME} printable characters"
INSTANT_RULE = "must be an ISO-8601 date-time with its zone, e.g. 2025-06-04T11:27:52.014Z"
ZONE_RULE = "has no zone: end it in Z (UTC) or an offset such as +02:00"
#: The one form records answer with: UTC, milliseconds, ``Z``.
CANONICAL_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_INSTANTS = ("rptKickoffDatetime", "completedAt", "expiresAt")


@dataclass(frozen=True)
class JobRecord:
    """Field names are the contract's own, so the JSON on disk or in S3 is the record itself."""

    id: str
    studyId: str | None  # noqa: N815 - the contract's field name
    mode: str
    reportName: str  # noqa: N815
    rptKickoffDatetime: str  # noqa: N815
    rptFormat: str  # noqa: N815
    status: str
    fileName: str  # noqa: N815
    contentType: str  # noqa: N815
    size: int
    sha256: str
    completedAt: str  # noqa: N815
    requiredPermission: str = DEFAULT_PERMISSION  # noqa: N815
    rptId: str | None = None  # noqa: N815 - the report definition's GUID
    currSearchSpec: str | None = None  # noqa: N815
    currSortSpec: str | None = None  # noqa: N815
    expiresAt: str | None = None  # noqa: N815 - set by a retention (docs/api.md §6); null: never

    def __post_init__(self) -> None:
        """Instants in the one canonical form, whatever form an older publish stored:
        every answer (listing, publish, catalog) shows a record's times the same way."""
        for name in _INSTANTS:
            value = getattr(self, name)
            if value is not None and not CANONICAL_INSTANT.fullmatch(value):
                try:
                    object.__setattr__(self, name, format_instant(parse_instant(value)))
                except OverflowError:
                    raise ValueError(f"{name} {INSTANT_RULE}") from None

    @property
    def is_complete(self) -> bool:
        return self.status == COMPLETED

    @property
    def kickoff(self) -> datetime:
        return parse_instant(self.rptKickoffDatetime)

    @property
    def completed(self) -> datetime:
        return parse_instant(self.completedAt)

    @property
    def expires(self) -> datetime | None:
        return None if self.expiresAt is None else parse_instant(self.expiresAt)

    @property
    def scope(self) -> str:
        """The study id, or ``tenant`` for a tenant-level report: what grants are keyed by."""
        return self.studyId or TENANT_SCOPE

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> JobRecord:
        """Parse a stored record; unknown fields are ignored so records can grow.

        Raises ValueError for anything that is not a record, so a damaged file is a fault
        its reader can name rather than a TypeError from deep inside.
        """
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a record is a JSON object")
        names = cls.__dataclass_fields__
        try:
            return cls(**{key: value for key, value in raw.items() if key in names})
        except TypeError as error:
            raise ValueError(f"not a record: {error}") from None


def normalise_mode(mode: str) -> str:
    """The mode as records store it, in lower case; ValueError for any other mode."""
    if mode.lower() not in MODES:
        raise ValueError(MODE_RULE)
    return mode.lower()


def check_report_name(name: str) -> str:
    """The name when a record may carry it; control characters could forge log lines."""
    if not 1 <= len(name) <= MAX_REPORT_NAME or not name.isprintable():
        raise ValueError(REPORT_NAME_RULE)
    return name


def now_instant() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a ``Z``, as records store it."""
    return format_instant(datetime.now(UTC))


def format_instant(moment: datetime) -> str:
    """An instant as records store it: ISO-8601 in UTC with milliseconds and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(value: str) -> datetime:
    """Parse a stored ISO-8601 date-time; one without a zone is UTC, as the publish that
    stored it (before zones were required) read it. What a user types goes through
    ``given_instant`` instead."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def given_instant(value: str) -> datetime:
    """An instant typed by a user (publish, the download's filter, ``audit show``), to
    the millisecond records keep; ValueError for anything else.

    A date-time without a zone is a wall-clock time in an unknown place, not an instant:
    it is refused rather than guessed to be UTC, and so is a bare date.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(INSTANT_RULE) from None
    if parsed.tzinfo is None:
        raise ValueError(INSTANT_RULE if _is_bare_date(value) else ZONE_RULE)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(INSTANT_RULE) from None
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _is_bare_date(value: str) -> bool:
    """Whether ``fromisoformat`` would read ``value`` as midnight of a date it only names."""
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
