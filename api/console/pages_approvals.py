"""K7 approvals, phone first: the list, and one request's page where a department leader
approves or refuses with a note in two touches (open the link, press a button)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid
from api.routes import approvals, keys, people
from kiosk.errors import Conflict, InvalidRequest
from kiosk.store.models import ApprovalStatus

NEW_KINDS = {"key_id": "uuid", "requested_for_id": "uuid", "reason": "text",
             "valid_until": "local"}


def _names(ctx: Ctx, items: list[Any]) -> dict[str, dict[uuid.UUID, str]]:
    audit = ctx.runtime.audit
    return {
        "people": labels.people(audit, [i.requested_for_id for i in items]
                                + [i.requested_by_id for i in items]
                                + [i.approver_id for i in items]),
        "keynums": labels.keys(audit, [i.key_id for i in items]),
    }


def _list(ctx: Ctx, status: ApprovalStatus | None, *, form: dict[str, Any] | None = None,
          errors: dict[str, str] | None = None, problem: str | None = None,
          code: int = 200) -> Response:
    page = ctx.rest(approvals.list_approvals, status=status, key_id=None, person_id=None,
                    limit=100, offset=0)
    values: dict[str, Any] = {}
    if ctx.may(approvals.request_approval):
        special = ctx.rest(keys.list_keys, status=None, group_id=None, unit_id=None,
                           category=None, special=True, q=None, limit=200, offset=0)
        staff = ctx.rest(people.list_people, department_id=None, role=None, active=True, q=None,
                         limit=200, offset=0)
        values["key_options"] = [(k.id, f"{k.key_number} · {k.label}") for k in special.items]
        values["person_options"] = [(p.id, f"{p.name} ({p.staff_no})") for p in staff.items]
    return ctx.render("approvals.html", status=code, title_id="nav.approvals", items=page.items,
                      total=page.total, names=_names(ctx, page.items), chosen=status,
                      statuses=list(ApprovalStatus), form=form or {}, errors=errors or {},
                      problem=problem, **values)


@router.get("/approvals", response_class=HTMLResponse)
def list_page(ctx: CtxDep, status: ApprovalStatus | None = None) -> Response:
    return _list(ctx, status)


@router.post("/approvals", response_class=HTMLResponse)
async def request_approval(ctx: CtxDep) -> Response:
    data = await ctx.form()
    try:
        body = ctx.body(approvals.ApprovalIn, data, NEW_KINDS)
        row = ctx.rest(approvals.request_approval, body=body)
    except FormInvalid as exc:
        return _list(ctx, None, form=data, errors=exc.errors, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _list(ctx, None, form=data, code=422,
                     problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/approvals/{row.id}"), flash="created")


def _detail(ctx: Ctx, approval_id: uuid.UUID, *, problem: str | None = None,
            errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
            code: int = 200) -> Response:
    item = ctx.rest(approvals.get_approval, approval_id=approval_id)
    key = ctx.rest(keys.get_key, key_id=item.key_id) if ctx.may(keys.get_key) else None
    person = ctx.rest(people.get_person, person_id=item.requested_for_id)
    department = labels.departments(ctx.runtime.audit, [person.department_id])
    return ctx.render(
        "approval.html", status=code, title_id="nav.approvals", item=item, key=key,
        person=person, department=department.get(person.department_id) if
        person.department_id else None, names=_names(ctx, [item]), problem=problem,
        errors=errors or {}, form=form or {},
        can_decide=ctx.may(approvals.approve) and item.status == ApprovalStatus.PENDING,
        can_expire=ctx.may(approvals.expire) and item.status in (
            ApprovalStatus.PENDING, ApprovalStatus.APPROVED),
    )


@router.get("/approvals/{approval_id:uuid}", response_class=HTMLResponse)
def detail_page(ctx: CtxDep, approval_id: uuid.UUID) -> Response:
    return _detail(ctx, approval_id)


DECISIONS = {"approve": (approvals.approve, "approved"), "reject": (approvals.reject, "rejected"),
             "expire": (approvals.expire, "withdrawn")}


@router.post("/approvals/{approval_id:uuid}/decide", response_class=HTMLResponse)
async def decide(ctx: CtxDep, approval_id: uuid.UUID) -> Response:
    """Approve, refuse or withdraw: the button pressed names the REST operation run."""
    data = await ctx.form()
    choice = DECISIONS.get(str(data.get("decision")))
    if choice is None:
        return _detail(ctx, approval_id, code=422, errors={"decision": ctx.t("form.choose")})
    endpoint, flash = choice
    try:
        body = ctx.body(approvals.DecisionIn, data, {"note": "optional"})
        ctx.rest(endpoint, approval_id=approval_id, body=body)
    except FormInvalid as exc:
        return _detail(ctx, approval_id, errors=exc.errors, form=data, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _detail(ctx, approval_id, form=data, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/approvals/{approval_id}"), flash=flash)
