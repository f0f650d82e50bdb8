"""Whether a job is still available: neither withdrawn nor expired (docs/api.md §6)."""

from __future__ import annotations

from datetime import datetime

from ..errors import ReportFileUnavailable, ReportGone
from ..storage import JobRecord, Store


def check_available(store: Store, record: JobRecord, now: datetime) -> None:
    """410 when the job was withdrawn or has expired at ``now``.

    Asked after every other check of a download, so only a caller who may see the
    job learns it is gone. The withdrawal is read from the store, the shared truth of
    every host, on each download (a remote store may remember it for a few seconds).
    """
    try:
        withdrawal = store.withdrawal(record.id)
    except ValueError:
        raise ReportFileUnavailable(
            f"the withdrawal stored for job {record.id} is unreadable"
        ) from None
    if withdrawal is not None:
        raise ReportGone(f"withdrawn: {withdrawal.reason}")
    expires = record.expires
    if expires is not None and expires <= now:
        raise ReportGone(f"expired at {record.expiresAt}")
