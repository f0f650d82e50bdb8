"""The download endpoint's query: marshmallow fields that validate and normalise it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load

from ..ids import DASHED_GUID_PATTERN, GUID_PATTERN, GUID_RULE, normalise_guid
from ..storage.record import (
    MAX_REPORT_NAME,
    MODES,
    check_report_name,
    given_instant,
    normalise_mode,
)

EMPTY_MEANS_ABSENT = ("id", "mode", "reportName", "rptKickoffDatetime", "rptId")
CASE_INSENSITIVE = ("mode",)
#: The message of a required parameter that is absent: the parser's "Insufficient" 400.
MISSING = "is required"


class Guid(fields.Field[str]):
    """A GUID in plain or dashed form, any case, loaded as 32 upper-case hex digits."""

    #: The text this field accepts, for the OpenAPI document (``_deserialize`` is the rule).
    pattern = f"^(?:{GUID_PATTERN}|{DASHED_GUID_PATTERN})$"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return normalise_guid(str(value))
        except ValueError:
            raise ValidationError(GUID_RULE) from None


class StudyId(Guid):
    """A study GUID, or empty / ``null`` (any case) for a tenant-level report: None."""

    pattern = f"^(?:{GUID_PATTERN}|{DASHED_GUID_PATTERN}|[Nn][Uu][Ll][Ll])?$"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if str(value) == "" or str(value).lower() == "null":
            return None
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError:
            raise ValidationError(GUID_RULE + ", empty, or null") from None


class Instant(fields.DateTime):
    """An ISO-8601 date-time with its zone, by the rule publish applies: a zone-less one
    or a bare date names no instant, so it is malformed rather than guessed to be UTC."""

    #: What the OpenAPI document promises beside ``format: date-time``: RFC 3339's form with
    #: an upper-case ``T`` and ``Z``, no leap second, and a year from 2 to 9998 (so that
    #: the instant in UTC is within Python's years), which ``given_instant`` always reads
    #: (it also reads other ISO-8601 forms; the document names one).
    pattern = (
        r"^(?!0000|0001|9999)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
        r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
        r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
    )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            return given_instant(str(value))
        except ValueError as error:
            raise ValidationError(str(error)) from None


def checked_by(check: Callable[[str], str]) -> Callable[[str], None]:
    """A validator applying a rule of the records, so the query and publish share one rule."""

    def validate_value(value: str) -> None:
        try:
            check(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None

    return validate_value


def mode_field(description: str) -> fields.String:
    """A ``mode`` parameter: the records' rule, documented with its choices."""
    return fields.String(
        validate=checked_by(normalise_mode),
        metadata={"description": description, "enum": list(MODES)},
    )


class ReportName(fields.String):
    """A report name: 1 to ``MAX_REPORT_NAME`` printable characters, the records' rule
    (the OpenAPI document spells "printable" out as a pattern)."""


def report_name_field(description: str) -> ReportName:
    """A ``reportName`` parameter: the records' rule, documented with its length."""
    return ReportName(
        validate=checked_by(check_report_name),
        metadata={"description": description, "minLength": 1, "maxLength": MAX_REPORT_NAME},
    )


@dataclass(frozen=True)
class DownloadQuery:
    """The job asked for and the filters given, keyed by parameter; absent ones are not in
    ``filters`` (``jobs.filters`` holds them to the job)."""

    id: str
    filters: dict[str, Any] = field(default_factory=dict)


class QuerySchema(Schema):
    """A query string's schema: unknown parameters are ignored, some empty ones count as
    absent, and ``mode`` is read in any letter case."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _normalise(self, data: dict[str, str], **kwargs: Any) -> dict[str, str]:
        cleaned = {
            key: value
            for key, value in data.items()
            if not (key in EMPTY_MEANS_ABSENT and value == "")
        }
        for key in CASE_INSENSITIVE:
            if key in cleaned:
                cleaned[key] = cleaned[key].lower()
        return cleaned


class DownloadQuerySchema(QuerySchema):
    """Query parameters of ``GET /reports/download`` (docs/api.md §1); unknown ones are ignored."""

    id = Guid(
        required=True,
        error_messages={"required": MISSING},
        metadata={"description": "The report job id: 32 hex digits or the dashed form."},
    )
    studyId = StudyId(  # noqa: N815 - the API's parameter name
        metadata={"description": "The job's study id, or empty or null for a tenant report."}
    )
    mode = mode_field("The job's mode, any letter case.")
    reportName = report_name_field("The job's report name, printable characters only.")  # noqa: N815
    rptKickoffDatetime = Instant(  # noqa: N815
        format="iso",
        metadata={
            "description": "The job's kickoff time with its zone (Z or an offset), compared "
            "as an instant to the millisecond."
        },
    )

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> DownloadQuery:
        job_id = data.pop("id")
        return DownloadQuery(id=job_id, filters=data)
