"""Admin API accounts and their API tokens: made, changed, unlocked, listed, each within the
caller's department scope, each change written with its audit event.

An administrator made or promoted over the API waits for a second one
(``kiosk.services.dual_control``); the device's console (``kiosk admin``) is exempt. An API
token is limited to scopes within its account's role; its secret is shown once. What a
credential is lives in ``kiosk.services.credentials``, the login in
``kiosk.services.password_login``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import canonical_json
from kiosk.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from kiosk.services import tx
from kiosk.services.authz import DEPARTMENT_ROLES, ROLE_PERMISSIONS, Principal, parse_scopes
from kiosk.services.credentials import (
    API_PREFIX,
    LOCAL_CONSOLE,
    AuthPolicy,
    actors_of,
    check_password_rules,
    new_secret,
    token_digest,
)
from kiosk.services.tokens import revoke_all
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


def needs_confirmation(by: Principal | None, role: AccountRole) -> bool:
    """An administrator made or promoted over the API waits for a second administrator
    (``kiosk.services.dual_control``); the device console is exempt."""
    return by is not None and role == AccountRole.ADMIN


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


def find_by_username(session: Session, username: str) -> Account | None:
    return session.scalars(select(Account).where(Account.username == username)).one_or_none()


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
        revoke_all(session, account.id)
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


# ------------------------------------------------------------------------ API tokens
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
    secret = new_secret(API_PREFIX)
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
