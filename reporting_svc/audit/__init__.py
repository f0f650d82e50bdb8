"""The audit trail of download attempts (docs/api.md §4): sinks, hash chain and verification."""

from .trail import AuditTrail, AuditUnavailableError, make_audit_trail

__all__ = ["AuditTrail", "AuditUnavailableError", "make_audit_trail"]
