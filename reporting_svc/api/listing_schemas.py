"""The download list's query and answer (docs/api.md §5), as marshmallow schemas.

The query schema validates like the download's (same GUID, mode and name rules, the
same two 400 answers); the answer's schemas serialise it and describe it in the
OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from ..jobs.listing import ListingQuery
from ..storage.file_names import shown_file_name
from .schemas import MISSING, Guid, QuerySchema, StudyId, mode_field, report_name_field

MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")


class DecimalInteger(fields.Field[int]):
    """ASCII decimal digits only: no sign, space, exponent, or digits of other scripts
    (which Python's ``int`` would accept), within ``[minimum, maximum]``."""

    def __init__(self, minimum: int, maximum: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = str(value)
        number = int(text) if _DIGITS.fullmatch(text) else None
        if number is None or not self.minimum <= number <= self.maximum:
            raise ValidationError(f"must be a whole number from {self.minimum} to {self.maximum}")
        return number


class ListingQuerySchema(QuerySchema):
    """Query parameters of ``GET /reportmetadata/downloadList``; unknown ones are ignored."""

    studyId = StudyId(  # noqa: N815 - the API's parameter name
        required=True,
        error_messages={"required": MISSING},
        metadata={"description": "The study whose runs to list; empty or null: the tenant's."},
    )
    mode = mode_field("Only runs in this mode, any letter case; absent: every mode.")
    rptId = Guid(  # noqa: N815
        metadata={"description": "Only runs of this report definition (its GUID)."}
    )
    reportName = report_name_field("Only runs of this report name.")  # noqa: N815
    limit = DecimalInteger(
        1,
        MAX_LIMIT,
        required=True,
        error_messages={"required": MISSING},
        metadata={"description": "The page size."},
    )
    offset = DecimalInteger(
        0,
        MAX_OFFSET,
        required=True,
        error_messages={"required": MISSING},
        metadata={"description": "How many runs to skip."},
    )

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> ListingQuery:
        return ListingQuery(
            study_id=data["studyId"],
            limit=data["limit"],
            offset=data["offset"],
            mode=data.get("mode"),
            rpt_id=data.get("rptId"),
            report_name=data.get("reportName"),
        )


class FileName(fields.String):
    """A stored file name as every answer shows it: the same form ``Content-Disposition``
    gives, so a client saving by the listing's name stays in its folder."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else shown_file_name(value)


def _string(description: str, **options: Any) -> fields.String:
    return fields.String(required=True, metadata={"description": description}, **options)


class RunSchema(Schema):
    """One report run, as Clinical One lists it; ``downloadId`` is the download's ``id``."""

    downloadId = _string("The job id to download.", attribute="id")  # noqa: N815
    reportId = _string("The report definition's GUID.", attribute="rptId", allow_none=True)  # noqa: N815
    reportName = _string("The report's name.")  # noqa: N815
    studyId = _string("The study, or null for a tenant report.", allow_none=True)  # noqa: N815
    mode = _string("test, active or training.")
    rptFormat = _string("CSV, PDF, XLSX, ...")  # noqa: N815
    status = _string("COMPLETED.")
    rptKickoffDatetime = _string("When the run started (ISO-8601).")  # noqa: N815
    completedAt = _string("When it completed (ISO-8601).")  # noqa: N815
    expiresAt = _string("When it stops being available, or null.", allow_none=True)  # noqa: N815
    currSearchSpec = _string("The run's search, or null.", allow_none=True)  # noqa: N815
    currSortSpec = _string("The run's sort, or null.", allow_none=True)  # noqa: N815
    fileName = FileName(  # noqa: N815
        required=True,
        metadata={"description": "The name to save the file as: one plain file name."},
    )
    contentType = _string("The file's media type.")  # noqa: N815
    size = fields.Integer(required=True, metadata={"description": "The file's size in bytes."})
    sha256 = _string("The file's SHA-256, in hex.")


class ListingPageSchema(Schema):
    """One page of runs, newest kickoff first, and the exact number of runs listed."""

    hasMore = fields.String(required=True, validate=validate.OneOf(["true", "false"]))  # noqa: N815
    totalResults = fields.Integer(required=True)  # noqa: N815
    count = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    reportId = fields.String(required=True, allow_none=True)  # noqa: N815
    reportRunStatus = fields.List(fields.Nested(RunSchema), required=True)  # noqa: N815


class ListingSchema(Schema):
    """The success envelope of the download list."""

    status = fields.String(required=True, validate=validate.OneOf(["success"]))
    errorData = fields.Raw(required=True, metadata={"type": "null"})  # noqa: N815
    result = fields.Nested(ListingPageSchema, required=True)
