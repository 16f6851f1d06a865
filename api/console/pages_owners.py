"""Owners (their personal data behind its own permission, every read logged: A1) and
their letters of authorization (K6): register, extend, end, record the phone call.

An extension is a renewal letter: a new authorization (new reference, later end) is
registered and the old one ended with a note naming it — two REST operations, each checked
and logged, and the renewal needs its own phone confirmation, as K6 wants for each letter.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid, paging, uuid_or_none
from api.routes import authorizations, owners, people
from api.schemas import Search
from kiosk.errors import Conflict, InvalidRequest
from kiosk.store.models import PhoneOutcome

OWNER_KINDS = {"name": "required", "phone": "optional", "address": "optional",
               "employer": "optional"}
AUTH_KINDS = {"owner_id": "uuid", "proxy_id": "uuid", "letter_ref": "text", "unit_ids": "list",
              "valid_from": "local", "valid_to": "local", "requires_phone_confirmation": "bool"}
CALL_KINDS = {"outcome": "text", "note": "optional", "called_at": "local", "called_by_id": "uuid"}


# ----------------------------------------------------------------------------- owners
def _owners(ctx: Ctx, q: str | None, *, number: int | None = None, form: dict[str, Any] | None = None,
            errors: dict[str, str] | None = None, problem: str | None = None,
            code: int = 200) -> Response:
    limit, offset = paging(number)
    page = ctx.rest(owners.list_owners, q=q, limit=limit, offset=offset)
    return ctx.render("owners.html", status=code, title_id="nav.owners", items=page.items,
                      total=page.total, paged=(page.total, limit, offset), chosen={"q": q or ""},
                      can_add=ctx.may(owners.create_owner), action_errors={"add": errors or {}},
                      form={"add": form or {}}, problem=problem)


@router.get("/owners", response_class=HTMLResponse)
def owners_page(ctx: CtxDep, q: Search | None = None,
                page: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> Response:
    return _owners(ctx, q, number=page)


@router.post("/owners", response_class=HTMLResponse)
async def add_owner(ctx: CtxDep) -> Response:
    data = await ctx.form()
    try:
        row = ctx.rest(owners.create_owner, body=ctx.body(owners.OwnerIn, data, OWNER_KINDS))
    except FormInvalid as exc:
        return _owners(ctx, None, form=data, errors=exc.errors, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _owners(ctx, None, form=data, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/owners/{row.id}"), flash="created")


def _owner(ctx: Ctx, owner_id: uuid.UUID, *, personal: Any = None,
           errors: dict[str, dict[str, str]] | None = None, form: dict[str, Any] | None = None,
           problem: str | None = None, code: int = 200) -> Response:
    owner = ctx.rest(owners.get_owner, owner_id=owner_id)
    units = ctx.rest(owners.list_units, floor=None, kind=None, owner_id=owner_id, special=None,
                     vacant=None, q=None, limit=200, offset=0) if ctx.may(owners.list_units) \
        else None
    letters = ctx.rest(authorizations.list_authorizations, owner_id=owner_id, proxy_id=None,
                       unit_id=None, valid_at=None, include_revoked=True, limit=100, offset=0) \
        if ctx.may(authorizations.list_authorizations) else None
    proxies = labels.people(ctx.runtime.audit, [a.proxy_id for a in letters.items]) \
        if letters else {}
    return ctx.render(
        "owner.html", status=code, title_id="nav.owners", owner=owner, units=units,
        letters=letters, proxies=proxies, personal=personal,
        can_edit=ctx.may(owners.update_owner), can_register=ctx.may(authorizations.register),
        can_read_personal=ctx.may(owners.read_personal_data),
        action_errors=errors or {}, form=form or {}, problem=problem,
    )


@router.get("/owners/{owner_id:uuid}", response_class=HTMLResponse)
def owner_page(ctx: CtxDep, owner_id: uuid.UUID) -> Response:
    return _owner(ctx, owner_id)


@router.post("/owners/{owner_id:uuid}/personal-data", response_class=HTMLResponse)
async def personal_data(ctx: CtxDep, owner_id: uuid.UUID) -> Response:
    """A1: shown once, in this answer only; the read (and its purpose) is an audit event.
    A POST with the CSRF token, so no other site can make a browser log reads."""
    data = await ctx.form()
    purpose = str(data.get("purpose") or "").strip() or None
    if purpose is not None and len(purpose) > 100:
        return _owner(ctx, owner_id, code=422, form={"personal": data},
                      errors={"personal": {"purpose": ctx.t("form.too_long", max=100)}})
    found = ctx.rest(owners.read_personal_data, owner_id=owner_id, purpose=purpose)
    return _owner(ctx, owner_id, personal=found)


@router.post("/owners/{owner_id:uuid}/edit", response_class=HTMLResponse)
async def edit_owner(ctx: CtxDep, owner_id: uuid.UUID) -> Response:
    data = await ctx.form()
    try:
        # only the name is edited here: personal fields are changed where they are shown
        body = ctx.body(owners.OwnerPatch, data, {"name": "required"})
        ctx.rest(owners.update_owner, owner_id=owner_id, body=body)
    except FormInvalid as exc:
        return _owner(ctx, owner_id, errors={"edit": exc.errors}, form={"edit": data}, code=422)
    return ctx.redirect(ctx.url(f"/owners/{owner_id}"), flash="saved")


# --------------------------------------------------------------------- authorizations
def _options(ctx: Ctx, owner: uuid.UUID | None) -> dict[str, Any]:
    """The register form: first the owner, then that owner's units (a tower has hundreds)."""
    found = ctx.rest(owners.list_owners, q=None, limit=200, offset=0)
    staff = ctx.rest(people.list_people, department_id=None, role=None, active=True, q=None,
                     limit=200, offset=0)
    units = ctx.rest(owners.list_units, floor=None, kind=None, owner_id=owner, special=None,
                     vacant=None, q=None, limit=200, offset=0) if owner else None
    return {
        "owner_options": [(o.id, o.name) for o in found.items],
        "proxy_options": [(p.id, f"{p.name} ({p.staff_no})") for p in staff.items],
        "unit_options": [(u.id, u.room_number) for u in units.items] if units else [],
        "chosen_owner": str(owner) if owner else "",
    }


def _letters(ctx: Ctx, include_revoked: bool, *, owner: uuid.UUID | None = None,
             form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
             problem: str | None = None, code: int = 200) -> Response:
    page = ctx.rest(authorizations.list_authorizations, owner_id=None, proxy_id=None,
                    unit_id=None, valid_at=None, include_revoked=include_revoked, limit=200,
                    offset=0)
    audit = ctx.runtime.audit
    can_write = ctx.may(authorizations.register) and ctx.may(owners.list_owners)
    extra = _options(ctx, owner) if can_write else {}
    owner_names = {o.id: o.name for o in ctx.rest(
        owners.list_owners, q=None, limit=200, offset=0).items} if ctx.may(owners.list_owners) \
        else {}
    defaults = {"requires_phone_confirmation": "on", "owner_id": str(owner) if owner else ""}
    return ctx.render(
        "authorizations.html", status=code, title_id="nav.authorizations", items=page.items,
        total=page.total, proxies=labels.people(audit, [a.proxy_id for a in page.items]),
        owner_names=owner_names, include_revoked=include_revoked, can_write=can_write,
        action_errors={"add": errors or {}}, form={"add": form or defaults}, problem=problem,
        **extra,
    )


@router.get("/authorizations", response_class=HTMLResponse)
def letters_page(ctx: CtxDep, include_revoked: bool = False,
                 owner_id: str | None = None) -> Response:
    return _letters(ctx, include_revoked, owner=uuid_or_none(owner_id))


@router.post("/authorizations", response_class=HTMLResponse)
async def register(ctx: CtxDep) -> Response:
    data = await ctx.form()
    try:
        body = ctx.body(authorizations.AuthorizationIn, data, AUTH_KINDS)
        row = ctx.rest(authorizations.register, body=body)
    except FormInvalid as exc:
        return _letters(ctx, False, owner=uuid_or_none(data.get("owner_id")), form=data,
                        errors=exc.errors, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _letters(ctx, False, owner=uuid_or_none(data.get("owner_id")), form=data,
                        code=409,
                        problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/authorizations/{row.id}"), flash="created")


def _letter(ctx: Ctx, authorization_id: uuid.UUID, *,
            errors: dict[str, dict[str, str]] | None = None, form: dict[str, Any] | None = None,
            problem: str | None = None, code: int = 200) -> Response:
    item = ctx.rest(authorizations.get_authorization, authorization_id=authorization_id)
    calls = ctx.rest(authorizations.list_phone_confirmations, authorization_id=authorization_id)
    audit = ctx.runtime.audit
    owner = ctx.rest(owners.get_owner, owner_id=item.owner_id) if ctx.may(owners.get_owner) \
        else None
    units = [ctx.rest(owners.get_unit, unit_id=u) for u in item.unit_ids] \
        if ctx.may(owners.get_unit) else []
    return ctx.render(
        "authorization.html", status=code, title_id="nav.authorizations", item=item,
        calls=calls, owner=owner, units=units,
        names=labels.people(audit, [item.proxy_id] + [c.called_by_id for c in calls]),
        outcome_options=[(o.value, ctx.label("phone", o)) for o in PhoneOutcome],
        can_write=ctx.may(authorizations.revoke) and not item.revoked,
        can_call=ctx.may(authorizations.record_phone_confirmation) and not item.revoked,
        caller_options=[(p.id, f"{p.name} ({p.staff_no})") for p in ctx.rest(
            people.list_people, department_id=None, role=None, active=True, q=None, limit=200,
            offset=0).items] if ctx.may(people.list_people) else [],
        action_errors=errors or {}, form=form or {}, problem=problem,
    )


@router.get("/authorizations/{authorization_id:uuid}", response_class=HTMLResponse)
def letter_page(ctx: CtxDep, authorization_id: uuid.UUID) -> Response:
    return _letter(ctx, authorization_id)


async def _act(ctx: Ctx, authorization_id: uuid.UUID, action: str, run: Any,
               flash: str) -> Response:
    data = await ctx.form()
    try:
        target = run(data) or authorization_id
    except FormInvalid as exc:
        return _letter(ctx, authorization_id, errors={action: exc.errors}, form={action: data},
                       code=422)
    except (InvalidRequest, Conflict) as exc:
        return _letter(ctx, authorization_id, form={action: data}, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/authorizations/{target}"), flash=flash)


@router.post("/authorizations/{authorization_id:uuid}/call", response_class=HTMLResponse)
async def record_call(ctx: CtxDep, authorization_id: uuid.UUID) -> Response:
    return await _act(ctx, authorization_id, "call", lambda data: ctx.rest(
        authorizations.record_phone_confirmation, authorization_id=authorization_id,
        body=ctx.body(authorizations.PhoneConfirmationIn, data, CALL_KINDS)) and None,
        "confirmed")


@router.post("/authorizations/{authorization_id:uuid}/end", response_class=HTMLResponse)
async def end(ctx: CtxDep, authorization_id: uuid.UUID) -> Response:
    return await _act(ctx, authorization_id, "end", lambda data: ctx.rest(
        authorizations.revoke, authorization_id=authorization_id,
        body=ctx.body(authorizations.RevokeIn, data, {"note": "optional"})) and None, "ended")


@router.post("/authorizations/{authorization_id:uuid}/extend", response_class=HTMLResponse)
async def extend(ctx: CtxDep, authorization_id: uuid.UUID) -> Response:
    def run(data: dict[str, Any]) -> uuid.UUID:
        old = ctx.rest(authorizations.get_authorization, authorization_id=authorization_id)
        values = {"owner_id": str(old.owner_id), "proxy_id": str(old.proxy_id),
                  "unit_ids": [str(u) for u in old.unit_ids],
                  "valid_from": ctx.when_input(old.valid_from),
                  "requires_phone_confirmation": "on" if old.requires_phone_confirmation else "",
                  "letter_ref": data.get("letter_ref"), "valid_to": data.get("valid_to")}
        body = ctx.body(authorizations.AuthorizationIn, values, AUTH_KINDS)
        if body.valid_to <= old.valid_to:
            raise FormInvalid({"valid_to": ctx.t("letters.later")})
        renewed = ctx.rest(authorizations.register, body=body)
        ctx.rest(authorizations.revoke, authorization_id=authorization_id,
                 body=authorizations.RevokeIn(note=f"extended by {renewed.letter_ref}"))
        return renewed.id
    return await _act(ctx, authorization_id, "extend", run, "extended")
