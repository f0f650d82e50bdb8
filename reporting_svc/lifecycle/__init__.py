"""Reports that expire, reports withdrawn in error, and the purge of their files (docs/api.md §6).

A download checks expiry and withdrawal itself (``jobs.availability``); this
package holds what operators run: ``withdraw`` and ``purge``.
"""

from .purge import Purger, PurgeSummary
from .records import Operator
from .withdraw import UnknownJob, Withdrawn, withdraw_job

__all__ = ["Operator", "PurgeSummary", "Purger", "UnknownJob", "Withdrawn", "withdraw_job"]
