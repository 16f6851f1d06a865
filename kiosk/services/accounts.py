"""Admin API accounts: argon2 passwords, login with lockout and rate limit, bearer tokens.

Why it is built this way:
- Passwords are argon2id hashes; an unknown username is checked against a dummy hash so a
  login takes as long whether or not the account exists.
- Every token is 256 random bits shown to the caller once; only its SHA-256 is stored, so a
  stolen database copy holds no usable credential. Access tokens (from a password login)
  live minutes; API tokens (for integrations) live long but carry scopes and can be revoked.
- Lockout and rate limits are counted from ``login_attempts`` rows, so they survive a
  restart and hold across processes. A refused login still commits its attempt row and its
  audit event: ``login`` therefore reports failure as a result instead of raising, because
  raising would roll the record of the failure back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import canonical_json
from kiosk.errors import Conflict, InvalidRequest, NotAuthenticated, NotFound, PermissionDenied
from kiosk.services import tx
from kiosk.services.authz import (
    DEPARTMENT_ROLES,
    ROLE_PERMISSIONS,
    Principal,
    parse_scopes,
)
from kiosk.store.models import Department, Person
from kiosk.store.models_auth import (
    Account,
    AccountRole,
    ApiToken,
    LoginAttempt,
    LoginOutcome,
    TokenKind,
)
from kiosk.store.types import utcnow

ACCESS_PREFIX = "kca_"
API_PREFIX = "kcp_"
MIN_PASSWORD = 10
MAX_PASSWORD = 256
LOCAL_CONSOLE = "console"
"""Actor name for changes made with ``kiosk admin`` on the device itself."""


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


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def check_password_rules(password: str) -> None:
    """Length only: NIST SP 800-63B advises length over composition rules."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters; got {len(password)}"
        )


def needs_confirmation(by: Principal | None, role: AccountRole) -> bool:
    """An administrator made or promoted over the API waits for a second administrator
    (``kiosk.services.dual_control``); the device console is exempt."""
    return by is not None and role == AccountRole.ADMIN


def actors_of(by: Principal | None) -> list[str]:
    return by.actors() if by else [LOCAL_CONSOLE]


# ------------------------------------------------------------------------- accounts
def _check_scope_fields(
    session: Session,
    *,
    by: Principal | None,
    role: AccountRole,
    person_id: uuid.UUID | None,
    department_id: uuid.UUID | None,
) -> None:
    if role in DEPARTMENT_ROLES and department_id is None:
        raise InvalidRequest(f"a {role.value} account needs a department scope")
    if department_id is not None:
        tx.get(session, Department, department_id, "department")
    if person_id is not None:
        tx.get(session, Person, person_id, "person")
    if by is not None and by.department_id is not None and department_id != by.department_id:
        raise PermissionDenied("a department-scoped account manages only its own department")


def visible_account(session: Session, by: Principal | None, account_id: uuid.UUID) -> Account:
    account = tx.get(session, Account, account_id, "account")
    if by is not None:
        by.check_department(account.department_id, f"account {account_id}")
    return account


def list_accounts(
    session: Session, *, by: Principal, limit: int, offset: int
) -> tuple[list[Account], int]:
    query = select(Account)
    if by.department_id is not None:
        query = query.where(Account.department_id == by.department_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Account.username).limit(limit).offset(offset)).all()
    return list(rows), total


def get_account(session: Session, *, by: Principal, account_id: uuid.UUID) -> Account:
    return visible_account(session, by, account_id)


def create_account(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal | None,
    username: str,
    password: str,
    role: AccountRole,
    person_id: uuid.UUID | None = None,
    department_id: uuid.UUID | None = None,
    policy: AuthPolicy,
) -> Account:
    """Make an account; ``by=None`` is the local console (``kiosk admin create``)."""
    check_password_rules(password)
    _check_scope_fields(session, by=by, role=role, person_id=person_id, department_id=department_id)
    if session.scalar(select(Account.id).where(Account.username == username)):
        raise Conflict(f"username {username!r} is taken")
    account = Account(
        username=username,
        password_hash=policy.hasher.hash(password),
        role=role,
        person_id=person_id,
        department_id=department_id,
        created_by_id=by.account_id if by else None,
        awaiting_confirmation=needs_confirmation(by, role),
    )
    session.add(account)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="account.created",
            actors=actors_of(by),
            payload={
                "account": str(account.id),
                "username": username,
                "role": role.value,
                "department": str(department_id) if department_id else None,
                "person": str(person_id) if person_id else None,
                "created_by": by.actor if by else LOCAL_CONSOLE,
                "awaiting_confirmation": account.awaiting_confirmation,
            },
        ),
    )
    return account


def update_account(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    account_id: uuid.UUID,
    values: dict[str, object],
) -> Account:
    """Change role, scope or active flag; deactivating ends every token of the account."""
    account = visible_account(session, by, account_id)
    if account.id == by.account_id and (
        values.get("active") is False or values.get("role", account.role) != account.role
    ):
        raise Conflict("an administrator cannot demote or deactivate their own account")
    merged = {
        "role": values.get("role", account.role),
        "person_id": values.get("person_id", account.person_id),
        "department_id": values.get("department_id", account.department_id),
    }
    _check_scope_fields(session, by=by, **merged)  # type: ignore[arg-type]
    changed = tx.changes(account, values)
    if changed.get("role") == AccountRole.ADMIN.value and needs_confirmation(by, account.role):
        # A promotion is a new administrator too: it waits for a second one (issue 16).
        account.awaiting_confirmation = True
        account.confirmed_by_id = None
        changed["awaiting_confirmation"] = True
    if changed.get("active") is False:
        _revoke_all(session, account.id, kinds=(TokenKind.ACCESS, TokenKind.API))
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="account.updated",
                actors=by.actors(),
                payload={"account": str(account.id), "username": account.username, **changed},
            ),
        )
    return account


def unlock(
    session: Session, audit: AuditLog, *, by: Principal | None, account_id: uuid.UUID
) -> Account:
    """End a lockout early: later failures count from zero again."""
    account = visible_account(session, by, account_id)
    session.add(LoginAttempt(username=account.username, remote="-", outcome=LoginOutcome.UNLOCK))
    tx.log(
        session,
        audit,
        NewEvent(
            type="account.unlocked",
            actors=actors_of(by),
            payload={"account": str(account.id), "username": account.username},
        ),
    )
    return account


def find_by_username(session: Session, username: str) -> Account | None:
    return session.scalars(select(Account).where(Account.username == username)).one_or_none()


# ---------------------------------------------------------------------------- login
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


def verify_password(policy: AuthPolicy, stored: str, password: str) -> bool:
    try:
        return policy.hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


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


# --------------------------------------------------------------------------- tokens
def issue_access_token(
    session: Session, *, account: Account, policy: AuthPolicy, now: dt.datetime | None = None
) -> tuple[ApiToken, str]:
    """A short-lived token carrying the account's whole role (what a login hands out)."""
    now = now or utcnow()
    secret = _new_secret(ACCESS_PREFIX)
    token = ApiToken(
        account_id=account.id,
        kind=TokenKind.ACCESS,
        name="login",
        prefix=secret[:12],
        token_hash=token_digest(secret),
        scopes=canonical_json([]),
        created_at=now,
        expires_at=now + dt.timedelta(minutes=policy.access_token_minutes),
    )
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(
    session: Session, *, by: Principal, account_id: uuid.UUID | None, include_revoked: bool
) -> list[ApiToken]:
    query = select(ApiToken).join(Account).where(ApiToken.kind == TokenKind.API)
    if account_id is not None:
        query = query.where(ApiToken.account_id == account_id)
    if by.department_id is not None:
        query = query.where(Account.department_id == by.department_id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiToken.created_at)).all())


def get_token(session: Session, *, by: Principal, token_id: uuid.UUID) -> ApiToken:
    token = tx.get(session, ApiToken, token_id, "API token")
    if token.kind != TokenKind.API:
        raise NotFound(f"API token {token_id} does not exist")
    by.check_department(token.account.department_id, f"API token {token_id}")
    return token


def create_api_token(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal | None,
    account_id: uuid.UUID,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None,
) -> tuple[ApiToken, str]:
    """A long-lived token for an integration, limited to ``scopes`` within the account's role."""
    account = visible_account(session, by, account_id)
    wanted = parse_scopes(scopes)
    if not wanted:
        raise InvalidRequest("an API token needs at least one scope")
    beyond = wanted - ROLE_PERMISSIONS[account.role]
    if beyond:
        raise InvalidRequest(f"role {account.role.value} does not have {', '.join(sorted(beyond))}")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidRequest("expires_at must be in the future")
    secret = _new_secret(API_PREFIX)
    token = ApiToken(
        account_id=account.id,
        kind=TokenKind.API,
        name=name,
        prefix=secret[:12],
        token_hash=token_digest(secret),
        scopes=canonical_json(sorted(p.value for p in wanted)),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="token.created",
            actors=actors_of(by),
            payload={
                "token": str(token.id),
                "account": str(account.id),
                "name": name,
                "scopes": sorted(p.value for p in wanted),
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        ),
    )
    return token, secret


def revoke_token(
    session: Session, audit: AuditLog, *, by: Principal, token_id: uuid.UUID
) -> ApiToken:
    token = get_token(session, by=by, token_id=token_id)
    if token.revoked_at is not None:
        raise Conflict(f"API token {token_id} is already revoked")
    token.revoked_at = utcnow()
    tx.log(
        session,
        audit,
        NewEvent(
            type="token.revoked",
            actors=by.actors(),
            payload={"token": str(token.id), "account": str(token.account_id)},
        ),
    )
    return token


def logout(session: Session, audit: AuditLog, *, principal: Principal) -> None:
    """End the caller's own access token (an API token is revoked by an administrator)."""
    token = tx.get(session, ApiToken, principal.token_id, "token")
    if token.kind != TokenKind.ACCESS:
        raise Conflict("logout ends login sessions; revoke an API token instead")
    token.revoked_at = utcnow()
    tx.log(
        session,
        audit,
        NewEvent(type="auth.logout", actors=principal.actors(), payload={"token": str(token.id)}),
    )


def _revoke_all(session: Session, account_id: uuid.UUID, *, kinds: Sequence[TokenKind]) -> None:
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.account_id == account_id,
            ApiToken.kind.in_(kinds),
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


def prune(session: Session, *, now: dt.datetime | None = None, keep_days: int = 30) -> int:
    """Delete expired access tokens and old login attempts (housekeeping, not history:
    the audit log keeps every login and logout)."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=keep_days)
    gone = 0
    for statement in (
        delete(ApiToken).where(ApiToken.kind == TokenKind.ACCESS, ApiToken.expires_at < now),
        delete(LoginAttempt).where(LoginAttempt.at < cutoff),
    ):
        result = cast(CursorResult[Any], session.execute(statement))
        gone += result.rowcount
    return gone


def authenticate(
    session: Session, *, secret: str, policy: AuthPolicy, now: dt.datetime | None = None
) -> tuple[Principal, bool]:
    """Resolve a bearer secret to its caller; the flag says ``last_used_at`` wants a refresh.

    Unknown, expired and revoked tokens and inactive accounts get the same answer, so the
    response tells an attacker nothing about which it was.
    """
    now = now or utcnow()
    if not secret.startswith((ACCESS_PREFIX, API_PREFIX)) or len(secret) > 200:
        raise NotAuthenticated("invalid or expired token")
    token = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == token_digest(secret))
    ).one_or_none()
    if (
        token is None
        or token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
        or not token.account.active
        or token.account.awaiting_confirmation
    ):
        raise NotAuthenticated("invalid or expired token")
    account = token.account
    permissions = ROLE_PERMISSIONS[account.role]
    if token.kind == TokenKind.API:
        permissions = permissions & parse_scopes(json.loads(token.scopes))
    stale = token.kind == TokenKind.API and (
        token.last_used_at is None
        or token.last_used_at < now - dt.timedelta(minutes=policy.touch_every_minutes)
    )
    principal = Principal(
        account_id=account.id,
        username=account.username,
        role=account.role,
        person_id=account.person_id,
        department_id=account.department_id,
        permissions=frozenset(permissions),
        token_id=token.id,
        token_kind=token.kind,
        expires_at=token.expires_at,
    )
    return principal, stale


def touch(session: Session, *, token_id: uuid.UUID, now: dt.datetime | None = None) -> None:
    session.execute(
        update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now or utcnow())
    )


def scopes_of(token: ApiToken) -> list[str]:
    return list(json.loads(token.scopes))
