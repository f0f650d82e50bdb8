"""Finding a job by its id: the record believed only for the key it was found under."""

from __future__ import annotations

from ..errors import JobNotFound, ReportFileUnavailable
from ..ids import normalise_guid
from ..storage import JobRecord, Store


def find_job(store: Store, job_id: str) -> JobRecord:
    """The job's record when it exists and is complete; 404 otherwise.

    Every lookup of a job passes here, so this is where a record is held to the key it
    was found under: one that cannot be read, or that names another job (a copied or
    forged ``record.json``), is a fault of the store and never leads to any file.
    """
    job_id = normalise_guid(job_id)
    try:
        record = store.get_record(job_id)
    except ValueError:
        raise ReportFileUnavailable(f"the record stored for job {job_id} is unreadable") from None
    if record is not None and record.id != job_id:
        raise ReportFileUnavailable(f"the record stored for job {job_id} names another job")
    if record is None or not record.is_complete:
        raise JobNotFound()
    return record
