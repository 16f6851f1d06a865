"""F1 alarms: filter by kind, state and owner; acknowledge, follow-up notes, assign, close
with a resolution. Each button runs the REST operation of the same name."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid, paging, uuid_or_none
from api.routes import alarms, people
from api.schemas import Code
from kiosk.errors import Conflict, InvalidRequest
from kiosk.store.models import AlarmState

ACTIONS: dict[str, tuple[Any, Any, dict[str, str], str]] = {
    "acknowledge": (alarms.acknowledge, alarms.NoteIn, {"note": "text"}, "acknowledged"),
    "note": (alarms.add_note, alarms.NoteIn, {"note": "text"}, "noted"),
    "close": (alarms.close, alarms.NoteIn, {"note": "text"}, "closed"),
    "assign": (alarms.assign, alarms.AssignIn, {"owner_id": "uuid", "note": "text"}, "saved"),
}
KNOWN_KINDS = ["door_forced", "door_held_open", "key_overdue", "count_mismatch", "lock_fault",
               "bus_fault", "wrong_slot", "slot_left_open", "returned_by_other",
               "key_inserted_unexpectedly", "key_removed_unauthorised"]


def _people_options(ctx: Ctx) -> list[tuple[uuid.UUID, str]]:
    if not ctx.may(people.list_people):
        return []
    page = ctx.rest(people.list_people, department_id=None, role=None, active=True, q=None,
                    limit=200, offset=0)
    return [(p.id, f"{p.name} ({p.staff_no})") for p in page.items]


@router.get("/alarms", response_class=HTMLResponse)
def list_page(ctx: CtxDep, state: AlarmState | None = None, kind: Code | None = None,
              owner_id: str | None = None,
              page: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> Response:
    owner = uuid_or_none(owner_id)
    limit, offset = paging(page)
    found = ctx.rest(alarms.list_alarms, state=state, kind=kind, owner_id=owner, key_id=None,
                     limit=limit, offset=offset)
    audit = ctx.runtime.audit
    return ctx.render(
        "alarms.html", title_id="nav.alarms", items=found.items, total=found.total,
        paged=(found.total, limit, offset),
        owners=labels.people(audit, [a.owner_id for a in found.items]),
        keynums=labels.keys(audit, [a.key_id for a in found.items]),
        slots=labels.slots(audit, [a.slot_id for a in found.items]),
        chosen={"state": state.value if state else "", "kind": kind or "",
                "owner_id": str(owner) if owner else ""},
        states=list(AlarmState), kinds=KNOWN_KINDS, people_options=_people_options(ctx),
    )


def _detail(ctx: Ctx, alarm_id: uuid.UUID, *, errors: dict[str, dict[str, str]] | None = None,
            form: dict[str, Any] | None = None, problem: str | None = None,
            code: int = 200) -> Response:
    item = ctx.rest(alarms.get_alarm, alarm_id=alarm_id)
    audit = ctx.runtime.audit
    return ctx.render(
        "alarm.html", status=code, title_id="nav.alarms", item=item,
        authors=labels.people(audit, [n.author_id for n in item.notes] + [item.owner_id]),
        keynums=labels.keys(audit, [item.key_id]), slots=labels.slots(audit, [item.slot_id]),
        action_errors=errors or {}, form=form or {}, problem=problem,
        can_write=ctx.may(alarms.acknowledge), people_options=_people_options(ctx),
    )


@router.get("/alarms/{alarm_id:uuid}", response_class=HTMLResponse)
def detail_page(ctx: CtxDep, alarm_id: uuid.UUID) -> Response:
    return _detail(ctx, alarm_id)


@router.post("/alarms/{alarm_id:uuid}/{action}", response_class=HTMLResponse)
async def act(ctx: CtxDep, alarm_id: uuid.UUID, action: str) -> Response:
    if action not in ACTIONS:
        return _detail(ctx, alarm_id, code=404)
    endpoint, model, kinds, flash = ACTIONS[action]
    data = await ctx.form()
    try:
        body = ctx.body(model, data, kinds)
        ctx.rest(endpoint, alarm_id=alarm_id, body=body)
    except FormInvalid as exc:
        return _detail(ctx, alarm_id, errors={action: exc.errors}, form={action: data}, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _detail(ctx, alarm_id, form={action: data}, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/alarms/{alarm_id}"), flash=flash)
