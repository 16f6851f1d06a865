"""Browser sessions of the web console: an access token that slides while it is used.

A console sign-in is a password login (``password_login.login``: the same lockout, rate limit
and audit events as ``POST /auth/login``); the access token it issues becomes the session.
An API client keeps a fixed 15-minute token, but a person working in the console should not
be thrown out mid-form while active: each use pushes the expiry out again, so the token
lapses after ``access_token_minutes`` *idle*, and never later than ``MAX_SESSION`` after
sign-in, however busy.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from kiosk.services.credentials import AuthPolicy
from kiosk.store.models_auth import ApiToken, TokenKind
from kiosk.store.types import utcnow

MAX_SESSION = dt.timedelta(hours=12)
"""However active, a console session signs in again after a working day."""
STEP = dt.timedelta(minutes=1)
"""The expiry moves at most once a minute: a page polling every few seconds must not take
the database's write lock on every request."""


def _target(token: ApiToken, policy: AuthPolicy, now: dt.datetime) -> dt.datetime:
    return min(now + dt.timedelta(minutes=policy.access_token_minutes),
               token.created_at + MAX_SESSION)


def due(session: Session, *, token_id: uuid.UUID, policy: AuthPolicy,
        now: dt.datetime | None = None) -> bool:
    """Whether ``slide`` would move the expiry (a read: the caller then writes only if so)."""
    now = now or utcnow()
    token = session.get(ApiToken, token_id)
    if token is None or token.kind != TokenKind.ACCESS or token.revoked_at is not None:
        return False
    return token.expires_at is None or _target(token, policy, now) - token.expires_at >= STEP


def slide(
    session: Session, *, token_id: uuid.UUID, policy: AuthPolicy, now: dt.datetime | None = None
) -> dt.datetime:
    """Move an access token's expiry to ``now + access_token_minutes`` (capped at
    ``MAX_SESSION`` after it was issued); returns the new expiry. Revoked or API tokens
    are left alone: only a live login slides."""
    now = now or utcnow()
    token = session.get(ApiToken, token_id)
    if token is None or token.kind != TokenKind.ACCESS or token.revoked_at is not None:
        return now
    until = _target(token, policy, now)
    if token.expires_at is None or until > token.expires_at:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(expires_at=until))
        return until
    return token.expires_at
