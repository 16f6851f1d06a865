"""Changing and resetting admin API passwords.

Why it is built this way:
- A password change is a password check like a login, so a wrong current password counts
  toward the account's lockout and the address's budget and is an ``auth.failed`` event.
  Otherwise ``POST /auth/password`` would be an unlimited, silent guessing oracle for anyone
  holding any token of the account (issue 16, item 2).
- Only a person who logged in with the password may change it: an API token is a credential
  of an integration, and the integration must not be able to take the account over.
- A new password ends every other credential of the account, API tokens included: the reason
  to change a password is usually that something leaked (issue 16, item 7).
- Like ``login``, a refused change must keep its attempt row and its event, so the service
  reports failure as a result instead of raising (raising would roll the record back).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import PermissionDenied
from kiosk.services import tx
from kiosk.services.accounts import visible_account
from kiosk.services.authz import Principal
from kiosk.services.credentials import (
    AuthPolicy,
    actors_of,
    check_password_rules,
    verify_password,
)
from kiosk.services.password_login import lockout_until, retry_after_seconds
from kiosk.services.tokens import revoke_all
from kiosk.store.models_auth import Account, LoginAttempt, LoginOutcome, TokenKind
from kiosk.store.types import utcnow


def set_password(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal | None,
    account_id: uuid.UUID,
    password: str,
    policy: AuthPolicy,
) -> Account:
    """An administrator resets a password; the account's sessions and API tokens end."""
    check_password_rules(password)
    account = visible_account(session, by, account_id)
    account.password_hash = policy.hasher.hash(password)
    account.password_changed_at = utcnow()
    revoke_all(session, account.id)
    tx.log(
        session,
        audit,
        NewEvent(
            type="account.password_reset",
            actors=actors_of(by),
            payload={"account": str(account.id), "username": account.username},
        ),
    )
    return account


@dataclass(frozen=True)
class ChangeResult:
    """The outcome of a password change; a refusal is recorded whatever it is."""

    ok: bool
    refusal: str | None = None
    retry_after: int = 0
    """Seconds until the lockout ends, when the account is locked."""


def change_own_password(
    session: Session,
    audit: AuditLog,
    *,
    principal: Principal,
    current: str,
    new: str,
    remote: str,
    policy: AuthPolicy,
    now: dt.datetime | None = None,
) -> ChangeResult:
    """The caller changes their password; every other credential of the account ends.

    Raises ``PermissionDenied`` for an API token (nothing is recorded: no password was
    tried); returns a refusal for a locked account or a wrong current password, whose
    attempt and event the caller's transaction commits.
    """
    if principal.token_kind != TokenKind.ACCESS:
        raise PermissionDenied("an API token cannot change a password; log in with the password")
    check_password_rules(new)
    now = now or utcnow()
    remote = remote[:64]
    account = tx.get(session, Account, principal.account_id, "account")
    locked = lockout_until(session, username=account.username, now=now, policy=policy)
    if locked is not None:
        session.add(LoginAttempt(username=account.username, remote=remote, at=now,
                                 outcome=LoginOutcome.REFUSED))
        _failed(session, audit, principal, remote, reason="account locked")
        return ChangeResult(False, "account locked", retry_after_seconds(locked, now))
    if not verify_password(policy, account.password_hash, current):
        session.add(LoginAttempt(username=account.username, remote=remote, at=now,
                                 outcome=LoginOutcome.FAILURE))
        _failed(session, audit, principal, remote, reason="wrong current password")
        session.flush()
        locked = lockout_until(session, username=account.username, now=now, policy=policy)
        if locked is not None:
            tx.log(session, audit, NewEvent(
                type="auth.account_locked", actors=principal.actors(),
                payload={"username": account.username, "until": locked.isoformat()},
            ))
        return ChangeResult(False, "the current password is wrong")
    account.password_hash = policy.hasher.hash(new)
    account.password_changed_at = now
    session.add(LoginAttempt(username=account.username, remote=remote, at=now,
                             outcome=LoginOutcome.SUCCESS))
    revoke_all(session, account.id, keep=principal.token_id)
    tx.log(
        session,
        audit,
        NewEvent(
            type="account.password_changed",
            actors=principal.actors(),
            payload={"account": str(account.id)},
        ),
    )
    return ChangeResult(True)


def _failed(
    session: Session, audit: AuditLog, principal: Principal, remote: str, *, reason: str
) -> None:
    tx.log(session, audit, NewEvent(
        type="auth.failed", actors=principal.actors(), decision="deny",
        payload={"username": principal.username, "remote": remote,
                 "via": "password_change", "reason": reason},
    ))
