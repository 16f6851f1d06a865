"""What a credential of the admin API is: argon2 passwords and their rules, bearer-token
secrets and their digests, the lifetimes and limits (``AuthPolicy``), and who a change made
without one is recorded against (the device's own console).

Why it is built this way:
- Passwords are argon2id hashes; an unknown username is checked against a dummy hash so a
  login takes as long whether or not the account exists.
- Every token is 256 random bits shown to the caller once; only its SHA-256 is stored, so a
  stolen database copy holds no usable credential.

The flows that use these live apart, each changing for its own reasons: account
administration (``kiosk.services.accounts``), the password login with its lockout
(``kiosk.services.password_login``), bearer tokens once issued (``kiosk.services.tokens``), password
changes (``kiosk.services.passwords``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kiosk.errors import InvalidRequest
from kiosk.services.authz import Principal

ACCESS_PREFIX = "kca_"

API_PREFIX = "kcp_"

MIN_PASSWORD = 10

MAX_PASSWORD = 256

LOCAL_CONSOLE = "console"
"""Actor name for changes made with ``kiosk admin`` on the device itself."""


def actors_of(by: Principal | None) -> list[str]:
    return by.actors() if by else [LOCAL_CONSOLE]


@dataclass(frozen=True)
class AuthPolicy:
    """Lifetimes and limits; defaults suit a cabinet administered by a handful of people."""

    access_token_minutes: int = 15
    max_failures: int = 5
    """Consecutive failed logins of one username that lock it."""
    lockout_minutes: int = 15
    remote_max_attempts: int = 20
    """Failed password checks one address may make per ``remote_window_minutes``."""
    remote_window_minutes: int = 5
    touch_every_minutes: int = 5
    """How stale ``last_used_at`` of an API token may get before a request refreshes it."""
    hasher: PasswordHasher = field(default_factory=PasswordHasher)

    def dummy_hash(self) -> str:
        return _dummy_hash(self.hasher)


_DUMMIES: dict[int, str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = id(hasher)
    if key not in _DUMMIES:
        _DUMMIES[key] = hasher.hash(secrets.token_urlsafe(16))
    return _DUMMIES[key]


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def check_password_rules(password: str) -> None:
    """Length only: NIST SP 800-63B advises length over composition rules."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters; got {len(password)}"
        )


def verify_password(policy: AuthPolicy, stored: str, password: str) -> bool:
    try:
        return policy.hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
