"""One error root for the daemon; each layer has its own subclasses.

Only ``api/`` maps these to HTTP status codes; the CLI maps them to exit codes.
"""

from __future__ import annotations


class KioskError(Exception):
    """Root of every error the daemon raises on purpose."""


class ConfigError(KioskError):
    """The configuration is invalid; the message names the option and the allowed range."""


class StoreError(KioskError):
    """The database refused an operation (constraint, missing record, wrong schema)."""


class NotFound(StoreError):
    """A record that was asked for by id or number does not exist."""


class Conflict(StoreError):
    """The change would break an integrity rule (duplicate key number, second open loan...)."""


class AuditError(KioskError):
    """The audit log could not be written or read."""


class DeviceKeyError(AuditError):
    """The device signing key is missing, unreadable or has unsafe permissions."""


class InvalidRequest(KioskError):
    """The request is well-formed but breaks a rule no schema can express (dates out of order,
    a custodian who is not one). Distinct from ``Conflict``: retrying later will not help."""


class Unavailable(KioskError):
    """A part of the daemon this request needs is not running (the API without a cabinet)."""


class AuthError(KioskError):
    """Authentication or authorization refused a caller."""


class NotAuthenticated(AuthError):
    """No credentials, or credentials that are unknown, expired or revoked."""


class PermissionDenied(AuthError):
    """The caller is known but their role, token scopes or department do not allow this."""


class TooManyAttempts(AuthError):
    """Login is rate-limited or the account is locked after repeated failures."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SimulationError(KioskError):
    """A simulated person tried something the physical cabinet would not allow."""
