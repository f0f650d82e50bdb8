"""Where a job's record and file live: the same keys on disk and in S3.

``jobs/<ID>/claim``, ``jobs/<ID>/content`` and ``jobs/<ID>/record.json`` are derived
from the validated job id alone, so a store copied between disk and a bucket serves
unchanged. Later changes of state are entries beside the record, ``jobs/<ID>/<name>``
(``withdrawn.json``, ``purged.json``, ``purge-recorded.json``: see entries). Everything a
job is lives under its own ``jobs/<ID>/``, so listing ``jobs/`` finds every job (the
catalog's rebuild does); anything else in a store, such as the ``index/`` markers older
versions wrote, is never read.
"""

from ..ids import normalise_guid

JOBS = "jobs/"
RECORD_NAME = "record.json"


def claim_key(job_id: str) -> str:
    """Created exclusively before anything else is written: whoever creates it owns the id."""
    return f"jobs/{normalise_guid(job_id)}/claim"


def record_key(job_id: str) -> str:
    return f"{JOBS}{normalise_guid(job_id)}/{RECORD_NAME}"


def content_key(job_id: str) -> str:
    return f"jobs/{normalise_guid(job_id)}/content"


def entry_key(job_id: str, name: str) -> str:
    return f"{JOBS}{normalise_guid(job_id)}/{name}"


def job_id_of_record_key(relative: str, name: str = RECORD_NAME) -> str | None:
    """The job id of a record key (or of an entry ``name``) found by listing ``jobs/``;
    None for any other key."""
    parts = relative.split("/")
    if len(parts) != 3 or parts[0] != "jobs" or parts[2] != name:
        return None
    try:
        return normalise_guid(parts[1])
    except ValueError:
        return None
