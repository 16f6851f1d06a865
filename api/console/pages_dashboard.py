"""Dashboard: keys out now, open alarms by kind, today's draws and returns, the daily count,
and the live cabinet (a slot grid that refreshes itself every 5 s through htmx)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep
from api.routes import alarms, events, live, loans
from kiosk.errors import KioskError, Unavailable
from kiosk.services.events import EventFilter
from kiosk.services.loans import LoanState
from kiosk.store.models import AlarmState
from kiosk.store.types import utcnow


def _keys_out(ctx: Ctx) -> list[dict[str, Any]]:
    page = ctx.rest(loans.list_loans, state=LoanState.OPEN, overdue=None, person_id=None,
                    key_id=None, drawn_since=None, drawn_before=None, limit=200, offset=0)
    names = labels.people(ctx.runtime.audit, [item.borrower_id for item in page.items])
    rows = [{"loan": item, "holder": names.get(item.borrower_id, "")} for item in page.items]
    rows.sort(key=lambda r: r["loan"].due_at)
    return rows


def _today(ctx: Ctx) -> dict[str, int]:
    start = labels.day_start(ctx.runtime.settings.zone).astimezone(dt.UTC)
    drawn = ctx.rest(loans.list_loans, state=LoanState.ALL, overdue=None, person_id=None,
                     key_id=None, drawn_since=start, drawn_before=None, limit=1, offset=0)
    recent = ctx.rest(loans.list_loans, state=LoanState.RETURNED, overdue=None, person_id=None,
                      key_id=None, drawn_since=start - dt.timedelta(days=14), drawn_before=None,
                      limit=200, offset=0)
    returned = sum(1 for item in recent.items if item.returned_at and item.returned_at >= start)
    return {"drawn": drawn.total, "returned": returned}


def _alarms_by_kind(ctx: Ctx) -> list[tuple[str, int]]:
    page = ctx.rest(alarms.list_alarms, state=AlarmState.OPEN, kind=None, owner_id=None,
                    key_id=None, limit=200, offset=0)
    return sorted(Counter(item.kind for item in page.items).items())


def _count_state(ctx: Ctx) -> dict[str, Any]:
    """K9's daily count: taken today (with what it found) or still due at its hour."""
    start = labels.day_start(ctx.runtime.settings.zone).astimezone(dt.UTC)
    found = ctx.rest(events.list_events, where=EventFilter(type="count.daily", since=start),
                     limit=10)
    at = ctx.runtime.settings.schedule.daily_count_at
    if not found.items:
        return {"taken": False, "at": at.strftime("%H:%M")}
    last = found.items[-1]
    return {"taken": True, "when": ctx.when(last.at), "payload": last.payload}


async def _live(ctx: Ctx, fault_slots: set[int]) -> dict[str, Any] | None:
    try:
        status = await ctx.rest_async(live.live_status, request=ctx.request)
    except Unavailable:
        return None
    tiles = []
    for slot in status.slots:
        if slot.number in fault_slots:
            state = "fault"
        elif slot.released:
            state = "open"
        elif slot.on_loan:
            state = "out"
        elif slot.key_present:
            state = "present"
        elif slot.key_number and slot.key_present is False:
            state = "fault"
        else:
            state = "empty"
        tiles.append({"slot": slot, "state": state})
    return {"status": status, "tiles": tiles}


def _fault_slots(ctx: Ctx) -> set[int]:
    if not ctx.may(alarms.list_alarms):
        return set()
    page = ctx.rest(alarms.list_alarms, state=AlarmState.OPEN, kind=None, owner_id=None,
                    key_id=None, limit=200, offset=0)
    numbers = labels.slots(ctx.runtime.audit, [a.slot_id for a in page.items])
    return {int(n) for n in numbers.values()}


async def _cabinet(ctx: Ctx) -> dict[str, Any] | None:
    if not ctx.may(live.live_status):
        return None
    return await _live(ctx, _fault_slots(ctx))


@router.get("/", response_class=HTMLResponse)
async def dashboard(ctx: CtxDep) -> Response:
    values: dict[str, Any] = {"now": ctx.when(utcnow())}
    if ctx.may(loans.list_loans):
        values["keys_out"] = _keys_out(ctx)
        values["today"] = _today(ctx)
    if ctx.may(alarms.list_alarms):
        values["alarm_kinds"] = _alarms_by_kind(ctx)
    if ctx.may(events.list_events):
        try:
            values["count"] = _count_state(ctx)
        except KioskError:
            values["count"] = None
    values["cabinet"] = await _cabinet(ctx)
    return ctx.render("dashboard.html", title_id="nav.dashboard", **values)


@router.get("/live", response_class=HTMLResponse)
async def live_grid(ctx: CtxDep) -> Response:
    """The slot grid alone, for htmx's ``every 5s`` refresh."""
    return ctx.render("_cabinet.html", cabinet=await _cabinet(ctx))
