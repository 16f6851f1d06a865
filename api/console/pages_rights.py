"""Access rights: grant, edit and withdraw, by person or by role; weekdays and hours."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid, paging, uuid_or_none
from api.routes import access_rights, keys, people
from kiosk.errors import Conflict, InvalidRequest
from kiosk.store.models import Role

WINDOW_KINDS = {"key_group_id": "uuid", "weekdays": "required", "start_time": "time",
                "end_time": "time", "valid_from": "local", "valid_to": "local"}
GRANT_KINDS = {**WINDOW_KINDS, "person_id": "uuid", "role": "uuid"}
DAYS = "1234567"


def _days(data: dict[str, Any]) -> dict[str, Any]:
    """Weekday checkboxes → the API's ``"12345"``."""
    picked = data.get("weekdays") or []
    picked = picked if isinstance(picked, list) else [picked]
    return {**data, "weekdays": "".join(d for d in DAYS if d in picked)}


def _options(ctx: Ctx) -> dict[str, Any]:
    groups = ctx.rest(keys.list_groups, limit=200, offset=0)
    staff = ctx.rest(people.list_people, department_id=None, role=None, active=True, q=None,
                     limit=200, offset=0)
    return {
        "group_options": [(g.id, g.name) for g in groups.items],
        "person_options": [(p.id, f"{p.name} ({p.staff_no})") for p in staff.items],
        "role_options": [(r.value, ctx.label("role", r)) for r in Role],
        "day_options": [(d, ctx.t(f"day.{d}")) for d in DAYS],
    }


def _list(ctx: Ctx, *, person: uuid.UUID | None = None, role: Role | None = None,
          number: int | None = None, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
          problem: str | None = None, code: int = 200) -> Response:
    limit, offset = paging(number)
    page = ctx.rest(access_rights.list_rights, person_id=person, role=role, key_group_id=None,
                    limit=limit, offset=offset)
    audit = ctx.runtime.audit
    return ctx.render(
        "rights.html", status=code, title_id="nav.rights", items=page.items, total=page.total,
        paged=(page.total, limit, offset),
        holders=labels.people(audit, [r.person_id for r in page.items]),
        groups=labels.groups(audit, [r.key_group_id for r in page.items]),
        chosen={"person_id": str(person) if person else "", "role": role.value if role else ""},
        can_write=ctx.may(access_rights.grant), action_errors={"grant": errors or {}},
        form={"grant": form or {"weekdays": list(DAYS)}}, problem=problem, **_options(ctx),
    )


@router.get("/rights", response_class=HTMLResponse)
def list_page(ctx: CtxDep, person_id: str | None = None, role: Role | None = None,
              page: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> Response:
    return _list(ctx, person=uuid_or_none(person_id), role=role, number=page)


@router.post("/rights", response_class=HTMLResponse)
async def grant(ctx: CtxDep) -> Response:
    data = await ctx.form()
    try:
        body = ctx.body(access_rights.RightIn, _days(data), GRANT_KINDS)
        ctx.rest(access_rights.grant, body=body)
    except FormInvalid as exc:
        return _list(ctx, form=data, errors=exc.errors, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _list(ctx, form=data, code=409, problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url("/rights"), flash="created")


def _detail(ctx: Ctx, right_id: uuid.UUID, *, errors: dict[str, str] | None = None,
            form: dict[str, Any] | None = None, problem: str | None = None,
            code: int = 200) -> Response:
    right = ctx.rest(access_rights.get_right, right_id=right_id)
    audit = ctx.runtime.audit
    current = {
        "key_group_id": str(right.key_group_id), "weekdays": list(right.weekdays),
        "start_time": right.start_time.strftime("%H:%M") if right.start_time else "",
        "end_time": right.end_time.strftime("%H:%M") if right.end_time else "",
        "valid_from": ctx.when_input(right.valid_from), "valid_to": ctx.when_input(right.valid_to),
    }
    return ctx.render(
        "right.html", status=code, title_id="nav.rights", right=right,
        holder=labels.people(audit, [right.person_id]).get(right.person_id) if right.person_id
        else ctx.label("role", right.role),
        can_write=ctx.may(access_rights.update_right), action_errors={"edit": errors or {}},
        form={"edit": form or current}, problem=problem, **_options(ctx),
    )


@router.get("/rights/{right_id:uuid}", response_class=HTMLResponse)
def detail_page(ctx: CtxDep, right_id: uuid.UUID) -> Response:
    return _detail(ctx, right_id)


@router.post("/rights/{right_id:uuid}/edit", response_class=HTMLResponse)
async def edit(ctx: CtxDep, right_id: uuid.UUID) -> Response:
    data = await ctx.form()
    try:
        body = ctx.body(access_rights.RightPatch, _days(data), WINDOW_KINDS)
        ctx.rest(access_rights.update_right, right_id=right_id, body=body)
    except FormInvalid as exc:
        return _detail(ctx, right_id, errors=exc.errors, form=data, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _detail(ctx, right_id, form=data, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/rights/{right_id}"), flash="saved")


@router.post("/rights/{right_id:uuid}/withdraw", response_class=HTMLResponse)
async def withdraw(ctx: CtxDep, right_id: uuid.UUID) -> Response:
    await ctx.form()
    ctx.rest(access_rights.withdraw, right_id=right_id)
    return ctx.redirect(ctx.url("/rights"), flash="withdrawn")
