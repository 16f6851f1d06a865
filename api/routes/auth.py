"""Login, logout, who am I, change my password."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import Field, StringConstraints

from api.deps import AuditDep, PolicyDep, PrincipalDep, client_address
from api.schemas import SINGLE_LINE, Out, Password, Strict
from kiosk.errors import NotAuthenticated, PermissionDenied, TooManyAttempts
from kiosk.services import password_login, passwords, tokens, tx
from kiosk.services.authz import Permission
from kiosk.store.models_auth import Account, AccountRole, TokenKind

router = APIRouter(tags=["auth"])


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SINGLE_LINE)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class AccountOut(Out):
    id: uuid.UUID
    username: str
    role: AccountRole
    person_id: uuid.UUID | None
    department_id: uuid.UUID | None
    active: bool
    awaiting_confirmation: bool = Field(
        description="A new administrator made over the API: it cannot act until a second "
                    "administrator confirms it (POST /accounts/{id}/confirm)."
    )
    created_by_id: uuid.UUID | None = Field(description="null: made on the device console")
    confirmed_by_id: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime


class TokenOut(Out):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime
    account: AccountOut


class MeOut(Out):
    account: AccountOut
    token_kind: TokenKind
    permissions: list[Permission]


class PasswordChangeIn(Strict):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


@router.post(
    "/auth/login",
    response_model=TokenOut,
    summary="Exchange username and password for a short-lived access token",
)
def login(body: LoginIn, request: Request, audit: AuditDep, policy: PolicyDep) -> TokenOut:
    remote = client_address(request)
    with tx.write(audit) as session:
        result = password_login.login(
            session,
            audit,
            username=body.username,
            password=body.password,
            remote=remote,
            policy=policy,
        )
        out = None
        if result.ok and result.account and result.token and result.token.expires_at:
            out = TokenOut(
                access_token=result.secret or "",
                expires_at=result.token.expires_at,
                account=AccountOut.model_validate(result.account),
            )
    if out is not None:
        return out
    if result.retry_after:
        raise TooManyAttempts(result.refusal or "try later", retry_after=result.retry_after)
    raise NotAuthenticated(result.refusal or "wrong username or password")


@router.post("/auth/logout", status_code=204, response_class=Response, summary="End this login")
def logout(principal: PrincipalDep, audit: AuditDep) -> Response:
    with tx.write(audit) as session:
        tokens.logout(session, audit, principal=principal)
    return Response(status_code=204)


@router.get("/auth/me", response_model=MeOut, summary="The caller's account and permissions")
def me(principal: PrincipalDep, audit: AuditDep) -> MeOut:
    with tx.read(audit) as session:
        account = tx.get(session, Account, principal.account_id, "account")
        return MeOut(
            account=AccountOut.model_validate(account),
            token_kind=principal.token_kind,
            permissions=sorted(principal.permissions),
        )


@router.post(
    "/auth/password",
    status_code=204,
    response_class=Response,
    summary="Change own password (a login session only; API tokens may not)",
    description=(
        "A wrong current password counts toward the account's lockout like a failed login "
        "and is an `auth.failed` event. Every other session and API token of the account "
        "ends; the calling session stays."
    ),
)
def change_password(
    body: PasswordChangeIn,
    request: Request,
    principal: PrincipalDep,
    audit: AuditDep,
    policy: PolicyDep,
) -> Response:
    with tx.write(audit) as session:
        result = passwords.change_own_password(
            session,
            audit,
            principal=principal,
            current=body.current_password,
            new=body.new_password,
            remote=client_address(request),
            policy=policy,
        )
    if result.retry_after:
        raise TooManyAttempts(result.refusal or "account locked", retry_after=result.retry_after)
    if not result.ok:
        raise PermissionDenied(result.refusal or "the current password is wrong")
    return Response(status_code=204)
