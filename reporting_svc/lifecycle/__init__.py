"""A report's life: published, expiring, withdrawn in error, its files purged (docs/api.md §6).

A download checks expiry and withdrawal itself (``jobs.availability``); this
package holds what operators and upstream code run: ``publish`` (and the embedded
default's ``sample``), ``withdraw`` and ``purge``.
"""

from .purge import Purger, PurgeSummary
from .records import Operator
from .withdraw import UnknownJob, Withdrawn, withdraw_job

__all__ = ["Operator", "PurgeSummary", "Purger", "UnknownJob", "Withdrawn", "withdraw_job"]
