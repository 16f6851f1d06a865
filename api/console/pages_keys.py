"""Keys and slots: search by key number, room or floor; a key's history; edit, move to
another slot, retire; pair or clear the key's fob chip (issue 13: typed ROM ID, or the one
the cabinet reads in the key's slot). Room and floor are searched through the units, as the API allows."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid, paging
from api.routes import cabinets, events, keys, loans, owners
from api.schemas import Search
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services import tx
from kiosk.services.events import EventFilter
from kiosk.services.loans import LoanState
from kiosk.store.models import KeyCategory, KeyStatus, Slot

EDIT_KINDS = {"label": "required", "group_id": "uuid", "category": "text", "copies": "int",
              "fob_tag": "optional"}


@router.get("/keys", response_class=HTMLResponse)
def list_page(
    ctx: CtxDep,
    q: Search | None = None,
    room: Search | None = None,
    floor: Annotated[int | None, Query(ge=-10, le=200)] = None,
    status: KeyStatus | None = None,
    page: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> Response:
    items: list[Any] = []
    pager = None
    if room or floor is not None:
        units = ctx.rest(owners.list_units, floor=floor, kind=None, owner_id=None, special=None,
                         vacant=None, q=room, limit=50, offset=0)
        for unit in units.items:
            items += ctx.rest(keys.list_keys, status=status, group_id=None, unit_id=unit.id,
                              category=None, special=None, q=q, limit=200, offset=0).items
        total = len(items)
    else:
        limit, offset = paging(page)
        found = ctx.rest(keys.list_keys, status=status, group_id=None, unit_id=None,
                         category=None, special=None, q=q, limit=limit, offset=offset)
        items, total = found.items, found.total
        pager = (total, limit, offset)
    return ctx.render("keys.html", title_id="nav.keys", items=items, total=total, paged=pager,
                      chosen={"q": q or "", "room": room or "",
                              "floor": "" if floor is None else floor,
                              "status": status.value if status else ""},
                      statuses=list(KeyStatus))


def _free_slots(ctx: Ctx, current: uuid.UUID | None) -> list[tuple[uuid.UUID, str]]:
    if not ctx.may(cabinets.list_slots):
        return []
    found = ctx.rest(cabinets.list_cabinets, limit=10, offset=0)
    options: list[tuple[uuid.UUID, str]] = []
    for cabinet in found.items:
        slots = ctx.rest(cabinets.list_slots, cabinet_id=cabinet.id, enabled=True, free=True,
                         limit=200, offset=0)
        options += [(s.id, f"{cabinet.name} · {s.number}") for s in slots.items
                    if s.id != current]
    return options


def _detail(ctx: Ctx, key_id: uuid.UUID, *, errors: dict[str, dict[str, str]] | None = None,
            form: dict[str, Any] | None = None, problem: str | None = None,
            code: int = 200) -> Response:
    key = ctx.rest(keys.get_key, key_id=key_id)
    unit = ctx.rest(owners.get_unit, unit_id=key.unit_id) if key.unit_id and ctx.may(
        owners.get_unit) else None
    history = ctx.rest(loans.list_loans, state=LoanState.ALL, overdue=None, person_id=None,
                       key_id=key_id, drawn_since=None, drawn_before=None, limit=50,
                       offset=0) if ctx.may(loans.list_loans) else None
    trail = ctx.rest(events.list_events, where=EventFilter(key_number=key.key_number),
                     limit=200) if ctx.may(events.list_events) else None
    groups = ctx.rest(keys.list_groups, limit=200, offset=0)
    audit = ctx.runtime.audit
    holders = labels.people(audit, [h.borrower_id for h in history.items] +
                            [h.returned_by_id for h in history.items]) if history else {}
    can_write = ctx.may(keys.update_key)
    return ctx.render(
        "key.html", status=code, title_id="nav.keys", key=key, unit=unit, history=history,
        trail=list(reversed(trail.items)) if trail else None, holders=holders,
        group_name={g.id: g.name for g in groups.items}.get(key.group_id, ""),
        group_options=[(g.id, g.name) for g in groups.items],
        category_options=[(c.value, ctx.label("key.category", c)) for c in KeyCategory],
        slot_options=_free_slots(ctx, key.home_slot_id) if can_write else [],
        can_write=can_write and key.status == KeyStatus.ACTIVE,
        can_pair=ctx.may(keys.pair_fob) and key.status == KeyStatus.ACTIVE,
        seen=_seen_in_home_slot(ctx, key.home_slot_id, key.home_slot_number),
        action_errors=errors or {}, form=form or {}, problem=problem,
    )


def _seen_in_home_slot(ctx: Ctx, slot_id: uuid.UUID | None,
                       number: int | None) -> dict[str, Any] | None:
    """What the running cabinet's receptor read in the key's home slot at its last scan
    (``{"slot": n, "rom": str | None}``), or ``None`` where nothing can be read: no home slot,
    no cabinet attached to this process, a slot of another cabinet, presence only."""
    cabinet = getattr(ctx.request.app.state, "cabinet", None)
    if slot_id is None or number is None or cabinet is None:
        return None
    fobs = cabinet.last_fobs()
    if fobs is None:
        return None
    with tx.read(ctx.runtime.audit) as session:
        slot = session.get(Slot, slot_id)
        if slot is None or slot.cabinet_id != cabinet.cabinet_id:
            return None
    return {"slot": number, "rom": fobs.get(number)}


@router.get("/keys/{key_id:uuid}", response_class=HTMLResponse)
def detail_page(ctx: CtxDep, key_id: uuid.UUID) -> Response:
    return _detail(ctx, key_id)


@router.post("/keys/{key_id:uuid}/edit", response_class=HTMLResponse)
async def edit(ctx: CtxDep, key_id: uuid.UUID) -> Response:
    data = await ctx.form()
    return await _run(ctx, key_id, "edit", data, lambda: ctx.rest(
        keys.update_key, key_id=key_id, body=ctx.body(keys.KeyPatch, data, EDIT_KINDS)), "saved")


@router.post("/keys/{key_id:uuid}/move", response_class=HTMLResponse)
async def move(ctx: CtxDep, key_id: uuid.UUID) -> Response:
    data = await ctx.form()
    return await _run(ctx, key_id, "move", data, lambda: ctx.rest(
        keys.move_key, key_id=key_id, body=ctx.body(keys.MoveIn, data, {"slot_id": "uuid"})),
        "moved")


@router.post("/keys/{key_id:uuid}/retire", response_class=HTMLResponse)
async def retire(ctx: CtxDep, key_id: uuid.UUID) -> Response:
    data = await ctx.form()
    return await _run(ctx, key_id, "retire", data, lambda: ctx.rest(
        keys.retire_key, key_id=key_id, body=ctx.body(keys.RetireIn, data, {"reason": "text"})),
        "retired")


@router.post("/keys/{key_id:uuid}/fob", response_class=HTMLResponse)
async def pair_fob(ctx: CtxDep, key_id: uuid.UUID) -> Response:
    """Pair the fob chip by its ROM ID typed from the fob's label (checked: CRC-8)."""
    data = await ctx.form()
    return await _run(ctx, key_id, "fob", data, lambda: ctx.rest(
        keys.pair_fob, key_id=key_id, body=ctx.body(keys.FobTyped, data, {"rom": "required"})),
        "fob_paired")


@router.post("/keys/{key_id:uuid}/fob/read", response_class=HTMLResponse)
async def read_fob(ctx: CtxDep, key_id: uuid.UUID) -> Response:
    """Pair the fob chip the cabinet read in the key's home slot at its last scan."""
    data = await ctx.form()
    return await _run(ctx, key_id, "fob_read", data, lambda: ctx.rest(
        keys.pair_fob, key_id=key_id, body=keys.FobFromSlot(from_slot=True)), "fob_paired")


@router.post("/keys/{key_id:uuid}/fob/clear", response_class=HTMLResponse)
async def clear_fob(ctx: CtxDep, key_id: uuid.UUID) -> Response:
    data = await ctx.form()
    return await _run(ctx, key_id, "fob_clear", data, lambda: ctx.rest(
        keys.clear_fob, key_id=key_id, body=ctx.body(keys.FobClearIn, data, {"reason": "text"})),
        "fob_cleared")


async def _run(ctx: Ctx, key_id: uuid.UUID, action: str, data: dict[str, Any],
               operation: Any, flash: str) -> Response:
    try:
        operation()
    except FormInvalid as exc:
        return _detail(ctx, key_id, errors={action: exc.errors}, form={action: data}, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _detail(ctx, key_id, form={action: data}, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/keys/{key_id}"), flash=flash)
