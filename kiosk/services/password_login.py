"""The password login: lockout and rate limit, then an access token.

Lockout and rate limits are counted from ``login_attempts`` rows, so they survive a restart
and hold across processes. A refused login still commits its attempt row and its audit
event: ``login`` therefore reports failure as a result instead of raising, because raising
would roll the record of the failure back.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.services import tx
from kiosk.services.accounts import find_by_username
from kiosk.services.credentials import AuthPolicy, verify_password
from kiosk.services.tokens import issue_access_token
from kiosk.store.models_auth import Account, ApiToken, LoginAttempt, LoginOutcome
from kiosk.store.types import utcnow


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a password login; the attempt is recorded whatever it is."""

    account: Account | None
    token: ApiToken | None
    secret: str | None
    refusal: str | None = None
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.secret is not None


def retry_after_seconds(until: dt.datetime, now: dt.datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def lockout_until(
    session: Session, *, username: str, now: dt.datetime, policy: AuthPolicy
) -> dt.datetime | None:
    """When the lockout of ``username`` ends, or None when it is not locked.

    Locked while ``max_failures`` failures lie inside the lockout window after the last
    success or unlock; it ends when the oldest of them leaves the window.
    """
    window_start = now - dt.timedelta(minutes=policy.lockout_minutes)
    rows = session.execute(
        select(LoginAttempt.at, LoginAttempt.outcome)
        .where(
            LoginAttempt.username == username,
            LoginAttempt.at > window_start,
            LoginAttempt.outcome != LoginOutcome.REFUSED,
        )
        .order_by(LoginAttempt.at.desc())
    ).all()
    failures: list[dt.datetime] = []
    for at, outcome in rows:
        if outcome != LoginOutcome.FAILURE:
            break
        failures.append(at)
    if len(failures) < policy.max_failures:
        return None
    return failures[policy.max_failures - 1] + dt.timedelta(minutes=policy.lockout_minutes)


def _remote_limited_until(
    session: Session, *, remote: str, now: dt.datetime, policy: AuthPolicy
) -> dt.datetime | None:
    window = dt.timedelta(minutes=policy.remote_window_minutes)
    # Failures only: a colleague's successful logins from the same address (a shared
    # office PC, a proxy) must not use up the budget an attacker is measured against.
    times = session.scalars(
        select(LoginAttempt.at)
        .where(
            LoginAttempt.remote == remote,
            LoginAttempt.at > now - window,
            LoginAttempt.outcome == LoginOutcome.FAILURE,
        )
        .order_by(LoginAttempt.at.desc())
        .limit(policy.remote_max_attempts)
    ).all()
    if len(times) < policy.remote_max_attempts:
        return None
    return times[-1] + window


def login(
    session: Session,
    audit: AuditLog,
    *,
    username: str,
    password: str,
    remote: str,
    policy: AuthPolicy,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Check a password; on success issue an access token. Never raises for a bad login."""
    now = now or utcnow()
    remote = remote[:64]
    limited = _remote_limited_until(session, remote=remote, now=now, policy=policy)
    locked = lockout_until(session, username=username, now=now, policy=policy)
    if limited or locked:
        until = max(t for t in (limited, locked) if t is not None)
        why = "too many login attempts from this address" if limited else "account locked"
        session.add(
            LoginAttempt(username=username, remote=remote, at=now, outcome=LoginOutcome.REFUSED)
        )
        tx.log(
            session,
            audit,
            NewEvent(
                type="auth.login_refused",
                actors=[f"account:{username}"],
                decision="deny",
                payload={"username": username, "remote": remote, "reason": why},
            ),
        )
        return LoginResult(None, None, None, refusal=why, retry_after=retry_after_seconds(until, now))
    account = find_by_username(session, username)
    stored = account.password_hash if account is not None else policy.dummy_hash()
    good = verify_password(policy, stored, password) and account is not None and account.active
    session.add(
        LoginAttempt(
            username=username,
            remote=remote,
            at=now,
            outcome=LoginOutcome.SUCCESS if good else LoginOutcome.FAILURE,
        )
    )
    if not good or account is None:
        tx.log(
            session,
            audit,
            NewEvent(
                type="auth.login_failed",
                actors=[f"account:{username}"],
                decision="deny",
                payload={"username": username, "remote": remote},
            ),
        )
        session.flush()
        locked = lockout_until(session, username=username, now=now, policy=policy)
        if locked is not None:
            tx.log(
                session,
                audit,
                NewEvent(
                    type="auth.account_locked",
                    actors=[f"account:{username}"],
                    payload={"username": username, "until": locked.isoformat()},
                ),
            )
        return LoginResult(None, None, None, refusal="wrong username or password")
    if account.awaiting_confirmation:
        tx.log(session, audit, NewEvent(
            type="auth.login_refused", actors=[f"account:{username}"], decision="deny",
            payload={"username": username, "remote": remote, "reason": "awaiting confirmation"},
        ))
        return LoginResult(None, None, None, refusal="this administrator account awaits a "
                           "second administrator's confirmation")
    if policy.hasher.check_needs_rehash(account.password_hash):
        account.password_hash = policy.hasher.hash(password)
    token, secret = issue_access_token(session, account=account, policy=policy, now=now)
    tx.log(
        session,
        audit,
        NewEvent(
            type="auth.login",
            actors=[f"account:{username}"],
            decision="allow",
            payload={"username": username, "remote": remote, "token": str(token.id)},
        ),
    )
    return LoginResult(account, token, secret)
