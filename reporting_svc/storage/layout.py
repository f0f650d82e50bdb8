"""Where a job's record, file and index entry live: the same keys on disk and in S3.

``jobs/<ID>/claim``, ``jobs/<ID>/content`` and ``jobs/<ID>/record.json`` are derived
from the validated job id alone, so a store copied between disk and a bucket serves
unchanged. Later changes of state are entries beside the record, ``jobs/<ID>/<name>``
(``withdrawn.json``, ``purged.json``, ``purge-recorded.json``: see entries). The empty marker
``index/<scope>/<mode>/<ID>`` (scope: the study id or ``tenant``) lets one study's jobs
in one mode be listed by prefix without reading every record.
"""

from ..ids import normalise_guid
from .record import MODES, TENANT_SCOPE

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


def index_prefix(study_id: str | None, mode: str) -> str:
    scope = normalise_guid(study_id) if study_id else TENANT_SCOPE
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    return f"index/{scope}/{mode}/"


def index_key(study_id: str | None, mode: str, job_id: str) -> str:
    return index_prefix(study_id, mode) + normalise_guid(job_id)


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
