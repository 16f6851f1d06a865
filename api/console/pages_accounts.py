"""Accounts and API tokens (administrators): create, edit, set a password, unlock; make a
scoped token (its secret shown once, never stored) and revoke it."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid
from api.routes import accounts, people
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services.authz import Permission
from kiosk.store.models_auth import AccountRole

NEW_KINDS = {"username": "text", "password": "text", "role": "text", "person_id": "uuid",
             "department_id": "uuid"}
EDIT_KINDS = {"role": "text", "active": "bool", "person_id": "uuid", "department_id": "uuid"}
TOKEN_KINDS = {"account_id": "uuid", "name": "text", "scopes": "list", "expires_at": "local"}


def _options(ctx: Ctx) -> dict[str, Any]:
    staff = ctx.rest(people.list_people, department_id=None, role=None, active=True, q=None,
                     limit=200, offset=0)
    depts = ctx.rest(people.list_departments, limit=200, offset=0)
    return {
        "role_options": [(r.value, ctx.label("role", r)) for r in AccountRole],
        "person_options": [(p.id, f"{p.name} ({p.staff_no})") for p in staff.items],
        "department_options": [(d.id, d.name) for d in depts.items],
        "scope_options": [(p.value, p.value) for p in Permission],
    }


def _list(ctx: Ctx, *, errors: dict[str, dict[str, str]] | None = None,
          form: dict[str, Any] | None = None, problem: str | None = None,
          secret: Any = None, code: int = 200) -> Response:
    page = ctx.rest(accounts.list_accounts, limit=200, offset=0)
    tokens = ctx.rest(accounts.list_tokens, account_id=None, include_revoked=False)
    audit = ctx.runtime.audit
    return ctx.render(
        "accounts.html", status=code, title_id="nav.accounts", items=page.items,
        tokens=tokens, usernames={a.id: a.username for a in page.items},
        persons=labels.people(audit, [a.person_id for a in page.items]),
        depts=labels.departments(audit, [a.department_id for a in page.items]),
        can_write=ctx.may(accounts.create_account), secret=secret,
        account_options=[(a.id, a.username) for a in page.items],
        action_errors=errors or {}, form=form or {}, problem=problem, **_options(ctx),
    )


@router.get("/accounts", response_class=HTMLResponse)
def list_page(ctx: CtxDep) -> Response:
    return _list(ctx)


async def _run(ctx: Ctx, action: str, run: Any, flash: str, target: str = "/accounts"
               ) -> Response:
    data = await ctx.form()
    try:
        result = run(data)
    except FormInvalid as exc:
        return _list(ctx, errors={action: exc.errors}, form={action: data}, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _list(ctx, form={action: data}, code=409,
                     problem=ctx.t("form.refused", detail=str(exc)))
    if action == "token":
        return _list(ctx, secret=result)  # shown once, in this answer only
    return ctx.redirect(ctx.url(target), flash=flash)


@router.post("/accounts", response_class=HTMLResponse)
async def create(ctx: CtxDep) -> Response:
    return await _run(ctx, "add", lambda data: ctx.rest(
        accounts.create_account, body=ctx.body(accounts.AccountIn, data, NEW_KINDS)), "created")


@router.post("/accounts/{account_id:uuid}/edit", response_class=HTMLResponse)
async def edit(ctx: CtxDep, account_id: uuid.UUID) -> Response:
    return await _run(ctx, f"edit-{account_id}", lambda data: ctx.rest(
        accounts.update_account, account_id=account_id,
        body=ctx.body(accounts.AccountPatch, data, EDIT_KINDS)), "saved")


@router.post("/accounts/{account_id:uuid}/password", response_class=HTMLResponse)
async def set_password(ctx: CtxDep, account_id: uuid.UUID) -> Response:
    return await _run(ctx, f"password-{account_id}", lambda data: ctx.rest(
        accounts.set_password, account_id=account_id,
        body=ctx.body(accounts.PasswordSetIn, data, {"password": "text"})), "saved")


@router.post("/accounts/{account_id:uuid}/unlock", response_class=HTMLResponse)
async def unlock(ctx: CtxDep, account_id: uuid.UUID) -> Response:
    return await _run(ctx, "unlock", lambda data: ctx.rest(accounts.unlock,
                                                           account_id=account_id), "unlocked")


@router.post("/api-tokens", response_class=HTMLResponse)
async def create_token(ctx: CtxDep) -> Response:
    return await _run(ctx, "token", lambda data: ctx.rest(
        accounts.create_token, body=ctx.body(accounts.ApiTokenIn, data, TOKEN_KINDS)), "token")


@router.post("/api-tokens/{token_id:uuid}/revoke", response_class=HTMLResponse)
async def revoke_token(ctx: CtxDep, token_id: uuid.UUID) -> Response:
    return await _run(ctx, "revoke", lambda data: ctx.rest(accounts.revoke_token,
                                                           token_id=token_id), "revoked")
