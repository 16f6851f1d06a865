"""Bearer tokens once issued: the short-lived access token a login hands out, a secret
resolved to its caller on every request, tokens ended (logout, an account deactivated, a
password changed), housekeeping.

Unknown, expired and revoked tokens and inactive accounts get the same answer from
``authenticate``, so a response tells an attacker nothing about which it was. Access tokens
(from a password login) live minutes; API tokens (for integrations, made by an administrator:
``kiosk.services.accounts``) live long but carry scopes and can be revoked.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import canonical_json
from kiosk.errors import Conflict, NotAuthenticated
from kiosk.services import tx
from kiosk.services.authz import ROLE_PERMISSIONS, Principal, parse_scopes
from kiosk.services.credentials import (
    ACCESS_PREFIX,
    API_PREFIX,
    AuthPolicy,
    new_secret,
    token_digest,
)
from kiosk.store.models_auth import Account, ApiToken, LoginAttempt, TokenKind
from kiosk.store.types import utcnow


def issue_access_token(
    session: Session, *, account: Account, policy: AuthPolicy, now: dt.datetime | None = None
) -> tuple[ApiToken, str]:
    """A short-lived token carrying the account's whole role (what a login hands out)."""
    now = now or utcnow()
    secret = new_secret(ACCESS_PREFIX)
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


def revoke_all(session: Session, account_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> None:
    """End every login session and API token of the account except ``keep`` (an account
    deactivated; a password changed, keeping the session that changed it)."""
    query = update(ApiToken).where(
        ApiToken.account_id == account_id,
        ApiToken.kind.in_((TokenKind.ACCESS, TokenKind.API)),
        ApiToken.revoked_at.is_(None),
    )
    if keep is not None:
        query = query.where(ApiToken.id != keep)
    session.execute(query.values(revoked_at=utcnow()))


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
