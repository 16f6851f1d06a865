"""Admin API accounts and long-lived API tokens (administrators only)."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field, StrictBool

from api.deps import AuditDep, PolicyDep, PrincipalDep, ReadSession, needs
from api.routes.auth import AccountOut
from api.schemas import (
    Instant,
    Limit,
    Name,
    Offset,
    Out,
    Page,
    Password,
    Strict,
    Username,
    page_of,
    patch_values,
)
from kiosk.services import accounts, dual_control, passwords, tokens, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models_auth import AccountRole, ApiToken

router = APIRouter(tags=["accounts"])


class AccountIn(Strict):
    # What the service enforces, stated in the document: a department leader's account is
    # scoped to a department (issue 16, item 12).
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"properties": {"role": {"const": "dept_leader"}}, "required": ["role"]},
        "then": {"properties": {"department_id": {"type": "string", "format": "uuid"}},
                 "required": ["department_id"]},
    })

    username: Username
    password: Password
    role: AccountRole
    person_id: uuid.UUID | None = None
    department_id: uuid.UUID | None = Field(
        default=None, description="Scope: the account sees only this department's records."
    )


class AccountPatch(Strict):
    role: AccountRole | None = Field(default=None, description="null: no change")
    active: StrictBool | None = Field(default=None, description="null: no change")
    person_id: uuid.UUID | None = None
    department_id: uuid.UUID | None = None


class PasswordSetIn(Strict):
    password: Password


class ApiTokenOut(Out):
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[P]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> ApiTokenOut:
        return cls(
            id=token.id,
            account_id=token.account_id,
            name=token.name,
            prefix=token.prefix,
            scopes=[P(s) for s in tokens.scopes_of(token)],
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class ApiTokenIn(Strict):
    account_id: uuid.UUID
    name: Name
    scopes: list[P] = Field(min_length=1, max_length=len(P))
    expires_at: Instant | None = None


class NewApiTokenOut(Out):
    token: str = Field(description="The secret. Shown once; only its hash is stored.")
    info: ApiTokenOut


@router.get("/accounts", response_model=Page[AccountOut], dependencies=[needs(P.ACCOUNTS_READ)])
def list_accounts(
    by: PrincipalDep,
    session: ReadSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AccountOut]:
    rows, total = accounts.list_accounts(session, by=by, limit=limit, offset=offset)
    return page_of(AccountOut, rows, total, limit, offset)


@router.post(
    "/accounts",
    response_model=AccountOut,
    status_code=201,
    dependencies=[needs(P.ACCOUNTS_WRITE)],
)
def create_account(
    body: AccountIn, by: PrincipalDep, audit: AuditDep, policy: PolicyDep
) -> AccountOut:
    with tx.write(audit) as session:
        account = accounts.create_account(session, audit, by=by, policy=policy, **body.model_dump())
        return AccountOut.model_validate(account)


@router.get(
    "/accounts/{account_id:uuid}", response_model=AccountOut, dependencies=[needs(P.ACCOUNTS_READ)]
)
def get_account(account_id: uuid.UUID, by: PrincipalDep, session: ReadSession) -> AccountOut:
    return AccountOut.model_validate(accounts.get_account(session, by=by, account_id=account_id))


@router.patch(
    "/accounts/{account_id:uuid}", response_model=AccountOut, dependencies=[needs(P.ACCOUNTS_WRITE)]
)
def update_account(
    account_id: uuid.UUID, body: AccountPatch, by: PrincipalDep, audit: AuditDep
) -> AccountOut:
    values = patch_values(body, nullable=frozenset({"person_id", "department_id"}))
    with tx.write(audit) as session:
        account = accounts.update_account(
            session, audit, by=by, account_id=account_id, values=values
        )
        return AccountOut.model_validate(account)


@router.post(
    "/accounts/{account_id:uuid}/password",
    status_code=204,
    response_class=Response,
    dependencies=[needs(P.ACCOUNTS_WRITE)],
    summary="Reset an account's password (ends its login sessions and API tokens)",
)
def set_password(
    account_id: uuid.UUID, body: PasswordSetIn, by: PrincipalDep, audit: AuditDep, policy: PolicyDep
) -> Response:
    with tx.write(audit) as session:
        passwords.set_password(
            session, audit, by=by, account_id=account_id, password=body.password, policy=policy
        )
    return Response(status_code=204)


@router.post(
    "/accounts/{account_id:uuid}/unlock",
    response_model=AccountOut,
    dependencies=[needs(P.ACCOUNTS_WRITE)],
    summary="End a lockout after repeated failed logins",
)
def unlock(account_id: uuid.UUID, by: PrincipalDep, audit: AuditDep) -> AccountOut:
    with tx.write(audit) as session:
        return AccountOut.model_validate(
            accounts.unlock(session, audit, by=by, account_id=account_id)
        )


@router.post(
    "/accounts/{account_id:uuid}/confirm",
    response_model=AccountOut,
    dependencies=[needs(P.ACCOUNTS_WRITE)],
    summary="Confirm a new administrator made by another administrator (dual control)",
)
def confirm(account_id: uuid.UUID, by: PrincipalDep, audit: AuditDep) -> AccountOut:
    with tx.write(audit) as session:
        return AccountOut.model_validate(
            dual_control.confirm_account(session, audit, by=by, account_id=account_id)
        )


@router.get("/api-tokens", response_model=list[ApiTokenOut], dependencies=[needs(P.ACCOUNTS_READ)])
def list_tokens(
    by: PrincipalDep,
    session: ReadSession,
    account_id: uuid.UUID | None = None,
    include_revoked: bool = False,
) -> list[ApiTokenOut]:
    rows = accounts.list_tokens(
        session, by=by, account_id=account_id, include_revoked=include_revoked
    )
    return [ApiTokenOut.of(t) for t in rows]


@router.post(
    "/api-tokens",
    response_model=NewApiTokenOut,
    status_code=201,
    dependencies=[needs(P.ACCOUNTS_WRITE)],
    summary="Create a scoped, revocable API token for an integration",
)
def create_token(body: ApiTokenIn, by: PrincipalDep, audit: AuditDep) -> NewApiTokenOut:
    with tx.write(audit) as session:
        token, secret = accounts.create_api_token(
            session,
            audit,
            by=by,
            account_id=body.account_id,
            name=body.name,
            scopes=[s.value for s in body.scopes],
            expires_at=body.expires_at,
        )
        return NewApiTokenOut(token=secret, info=ApiTokenOut.of(token))


@router.get(
    "/api-tokens/{token_id:uuid}", response_model=ApiTokenOut, dependencies=[needs(P.ACCOUNTS_READ)]
)
def get_token(token_id: uuid.UUID, by: PrincipalDep, session: ReadSession) -> ApiTokenOut:
    return ApiTokenOut.of(accounts.get_token(session, by=by, token_id=token_id))


@router.post(
    "/api-tokens/{token_id:uuid}/revoke",
    response_model=ApiTokenOut,
    dependencies=[needs(P.ACCOUNTS_WRITE)],
)
def revoke_token(token_id: uuid.UUID, by: PrincipalDep, audit: AuditDep) -> ApiTokenOut:
    with tx.write(audit) as session:
        return ApiTokenOut.of(accounts.revoke_token(session, audit, by=by, token_id=token_id))
