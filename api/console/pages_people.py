"""People and cards: find, add and edit people; issue a card with its validity dates,
report it lost, revoke it; enrol a card by tapping it at the cabinet (the cabinet waits 60 s
for the next unknown card, ``kiosk/cabinet/flows/enrolment.py``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid, paging, uuid_or_none
from api.routes import cards, people
from api.schemas import Search
from kiosk.errors import Conflict, InvalidRequest
from kiosk.store.models import CardKind, Role

PERSON_KINDS = {"staff_no": "required", "name": "required", "department_id": "uuid",
                "phone": "optional", "roles": "list", "active": "bool"}
CARD_KINDS = {"uid": "text", "kind": "text", "valid_from": "local", "valid_to": "local"}


def _departments(ctx: Ctx) -> list[tuple[uuid.UUID, str]]:
    page = ctx.rest(people.list_departments, limit=200, offset=0)
    return [(d.id, d.name) for d in page.items]


def _roles(ctx: Ctx) -> list[tuple[str, str]]:
    return [(r.value, ctx.label("role", r)) for r in Role]


def _list(ctx: Ctx, *, q: str | None = None, department: uuid.UUID | None = None,
          number: int | None = None, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
          problem: str | None = None, code: int = 200) -> Response:
    limit, offset = paging(number)
    page = ctx.rest(people.list_people, department_id=department, role=None, active=None, q=q,
                    limit=limit, offset=offset)
    departments = _departments(ctx)
    return ctx.render(
        "people.html", status=code, title_id="nav.people", items=page.items, total=page.total,
        paged=(page.total, limit, offset),
        dept_names=dict(departments), department_options=departments, role_options=_roles(ctx),
        chosen={"q": q or "", "department_id": str(department) if department else ""},
        can_add=ctx.may(people.create_person), action_errors={"add": errors or {}},
        form={"add": form or {"active": "on", "roles": ["staff"]}}, problem=problem,
    )


@router.get("/people", response_class=HTMLResponse)
def list_page(ctx: CtxDep, q: Search | None = None, department_id: str | None = None,
              page: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> Response:
    return _list(ctx, q=q, department=uuid_or_none(department_id), number=page)


@router.post("/people", response_class=HTMLResponse)
async def add(ctx: CtxDep) -> Response:
    data = await ctx.form()
    try:
        row = ctx.rest(people.create_person, body=ctx.body(people.PersonIn, data, PERSON_KINDS))
    except FormInvalid as exc:
        return _list(ctx, form=data, errors=exc.errors, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _list(ctx, form=data, code=409, problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/people/{row.id}"), flash="created")


def _detail(ctx: Ctx, person_id: uuid.UUID, *, errors: dict[str, dict[str, str]] | None = None,
            form: dict[str, Any] | None = None, problem: str | None = None,
            code: int = 200) -> Response:
    person = ctx.rest(people.get_person, person_id=person_id)
    held = ctx.rest(cards.list_cards, person_id=person_id, status=None, uid=None, limit=50,
                    offset=0) if ctx.may(cards.list_cards) else None
    departments = _departments(ctx)
    return ctx.render(
        "person.html", status=code, title_id="nav.people", person=person, cards=held,
        department=dict(departments).get(person.department_id) if person.department_id else None,
        department_options=departments, role_options=_roles(ctx),
        kind_options=[(k.value, ctx.label("card.kind", k)) for k in CardKind],
        can_edit=ctx.may(people.update_person), can_issue=ctx.may(cards.issue_card),
        can_lose=ctx.may(cards.report_lost),
        can_enrol=ctx.may(cards.start_enrolment)
        and getattr(ctx.request.app.state, "cabinet", None) is not None, can_revoke=ctx.may(cards.revoke_card),
        can_reset_pin=ctx.may(cards.reset_pin),
        action_errors=errors or {}, form=form or {}, problem=problem,
    )


@router.get("/people/{person_id:uuid}", response_class=HTMLResponse)
def detail_page(ctx: CtxDep, person_id: uuid.UUID) -> Response:
    return _detail(ctx, person_id)


async def _act(ctx: Ctx, person_id: uuid.UUID, action: str, run: Any, flash: str) -> Response:
    data = await ctx.form()
    try:
        run(data)
    except FormInvalid as exc:
        return _detail(ctx, person_id, errors={action: exc.errors}, form={action: data},
                       code=422)
    except (InvalidRequest, Conflict) as exc:
        return _detail(ctx, person_id, form={action: data}, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/people/{person_id}"), flash=flash)


@router.post("/people/{person_id:uuid}/edit", response_class=HTMLResponse)
async def edit(ctx: CtxDep, person_id: uuid.UUID) -> Response:
    return await _act(ctx, person_id, "edit", lambda data: ctx.rest(
        people.update_person, person_id=person_id,
        body=ctx.body(people.PersonPatch, data, PERSON_KINDS)), "saved")


@router.post("/people/{person_id:uuid}/cards", response_class=HTMLResponse)
async def issue(ctx: CtxDep, person_id: uuid.UUID) -> Response:
    def run(data: dict[str, Any]) -> None:
        values = {**data, "person_id": str(person_id)}
        ctx.rest(cards.issue_card, body=ctx.body(cards.CardIn, values,
                                                 {**CARD_KINDS, "person_id": "uuid"}))
    return await _act(ctx, person_id, "card", run, "created")


@router.post("/cards/{card_id:uuid}/{action}", response_class=HTMLResponse)
async def card_action(ctx: CtxDep, card_id: uuid.UUID, action: str) -> Response:
    endpoint = {"lost": cards.report_lost, "revoke": cards.revoke_card}.get(action)
    card = ctx.rest(cards.get_card, card_id=card_id)
    if endpoint is None:
        return _detail(ctx, card.person_id, code=404)
    flash = "reported_lost" if action == "lost" else "revoked"
    return await _act(ctx, card.person_id, f"card-{card_id}", lambda data: ctx.rest(
        endpoint, card_id=card_id,
        body=ctx.body(cards.NoteIn, data, {"note": "optional"})), flash)


@router.post("/people/{person_id:uuid}/pin/reset", response_class=HTMLResponse)
async def reset_pin(ctx: CtxDep, person_id: uuid.UUID) -> Response:
    """The cabinet PIN: cleared, the person sets a new one at the cabinet (``POST
    /people/{id}/pin/reset``; README "PIN and duress")."""
    return await _act(ctx, person_id, "pin", lambda data: ctx.rest(
        cards.reset_pin, person_id=person_id), "pin_reset")


# ------------------------------------------------------- enrolment by tapping (issue 11)
@router.post("/people/{person_id:uuid}/cards/enrol", response_class=HTMLResponse)
async def enrol(ctx: CtxDep, person_id: uuid.UUID) -> Response:
    """Put the cabinet into enrolment for this person (``POST …/cards/enrol``); the page
    that follows counts down and shows the outcome."""
    await ctx.form()
    try:
        started = await ctx.rest_async(cards.start_enrolment, person_id=person_id)
    except Conflict as exc:
        return _detail(ctx, person_id, code=409, problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/people/{person_id}/enrol/{started.id}"))


async def _enrolment(ctx: Ctx, person_id: uuid.UUID, enrolment_id: uuid.UUID) -> Any:
    return await ctx.rest_async(cards.enrolment_state, person_id=person_id,
                                enrolment_id=enrolment_id)


@router.get("/people/{person_id:uuid}/enrol/{enrolment_id:uuid}", response_class=HTMLResponse)
async def enrol_page(ctx: CtxDep, person_id: uuid.UUID, enrolment_id: uuid.UUID) -> Response:
    state = await _enrolment(ctx, person_id, enrolment_id)
    person = ctx.rest(people.get_person, person_id=person_id)
    return ctx.render("enrol.html", title_id="nav.people", person=person, enrolment=state)


@router.get("/people/{person_id:uuid}/enrol/{enrolment_id:uuid}/state",
            response_class=HTMLResponse)
async def enrol_state(ctx: CtxDep, person_id: uuid.UUID, enrolment_id: uuid.UUID) -> Response:
    """The countdown and outcome, swapped in by htmx every second while waiting."""
    state = await _enrolment(ctx, person_id, enrolment_id)
    person = ctx.rest(people.get_person, person_id=person_id)
    return ctx.render("_enrol_state.html", person=person, enrolment=state)
