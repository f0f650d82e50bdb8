"""The embedded default's sample report, so a newcomer's first request downloads something."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..catalog import Catalog
from ..storage import JobRecord, Store
from .publish import publish_report

SAMPLE_JOB_ID = "6A7C29DD011241DFBE1B64399283C860"
SAMPLE_STUDY_ID = "CFD8129A430A473C8A02F4BA5DAAD865"
SAMPLE_REPORT_ID = "E341BB429E7D44E3989D113A504F3BF8"
SAMPLE_REPORT_NAME = "Subject Data Extract"
SAMPLE_MODE = "test"
SAMPLE_KICKOFF = "2025-06-04T11:27:52.014Z"
_ROWS = [
    "subjectId,siteId,visit,visitDate,systolicBP,diastolicBP",
    "S-0001,SITE-01,Screening,2025-05-02,128,82",
    "S-0001,SITE-01,Week 4,2025-05-30,124,80",
    "S-0002,SITE-02,Screening,2025-05-05,135,88",
    "S-0002,SITE-02,Week 4,2025-06-02,131,85",
]


def ensure_sample(store: Store, catalog: Catalog) -> JobRecord:
    """Publish the sample report once; later starts find it already there (and index it
    if the catalog lacks it, say after the catalog file was deleted)."""
    existing = store.get_record(SAMPLE_JOB_ID)
    if existing is not None:
        catalog.add(existing)
        return existing
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "subject-data-extract.csv"
        path.write_text("\n".join(_ROWS) + "\n")
        return publish_report(
            store,
            path,
            report_name=SAMPLE_REPORT_NAME,
            mode=SAMPLE_MODE,
            study_id=SAMPLE_STUDY_ID,
            job_id=SAMPLE_JOB_ID,
            kickoff=SAMPLE_KICKOFF,
            rpt_id=SAMPLE_REPORT_ID,
            catalog=catalog,
        )
