"""A download's optional filters (docs/api.md §1): each one given must equal the job's own value."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import JobNotFound
from ..storage import JobRecord


def check_filters(filters: Mapping[str, object], record: JobRecord) -> None:
    """404 unless every given filter, keyed by its query parameter, equals the job's value.

    Times compare as instants. Asked after authorisation, so a caller without access
    learns nothing about a job by guessing its study, mode or name.
    """
    own = {
        "studyId": record.studyId,
        "mode": record.mode,
        "reportName": record.reportName,
        "rptKickoffDatetime": record.kickoff,
    }
    if any(own[name] != value for name, value in filters.items()):
        raise JobNotFound()
