"""K8 duty roster: a week grid, who is on duty now, add a shift (optionally repeated weekly:
each repetition is its own REST call, so each is checked and logged) and remove one (an
exception to the pattern)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid
from api.routes import people, roster
from kiosk.errors import Conflict, InvalidRequest
from kiosk.store.models import Role
from kiosk.store.types import utcnow

SHIFT_KINDS = {"person_id": "uuid", "starts_at": "local", "ends_at": "local"}
MAX_REPEAT = 12


def _monday(ctx: Ctx, week: dt.date | None) -> dt.datetime:
    zone = ctx.runtime.settings.zone
    day = week or utcnow().astimezone(zone).date()
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime.combine(monday, dt.time(0, 0), tzinfo=zone)


def _page(ctx: Ctx, week: dt.date | None, *, errors: dict[str, str] | None = None,
          form: dict[str, Any] | None = None, problem: str | None = None,
          code: int = 200) -> Response:
    start = _monday(ctx, week)
    end = start + dt.timedelta(days=7)
    shifts = ctx.rest(roster.list_shifts, starts_before=end.astimezone(dt.UTC),
                      ends_after=start.astimezone(dt.UTC), person_id=None, limit=200, offset=0)
    now = ctx.rest(roster.on_duty, at=None)
    names = labels.people(ctx.runtime.audit, [s.person_id for s in shifts.items] +
                          [s.person_id for s in now])
    zone = ctx.runtime.settings.zone
    now_ids = {s.id for s in now}
    days = []
    for offset in range(7):
        day_start = start + dt.timedelta(days=offset)
        day_end = day_start + dt.timedelta(days=1)
        days.append({
            "date": day_start.date(),
            "weekday": str(day_start.isoweekday()),
            "shifts": [s for s in shifts.items
                       if s.starts_at.astimezone(zone) < day_end
                       and s.ends_at.astimezone(zone) > day_start],
        })
    managers: list[tuple[uuid.UUID, str]] = []
    if ctx.may(roster.add_shift):
        found = ctx.rest(people.list_people, department_id=None, role=Role.DUTY_MANAGER,
                         active=True, q=None, limit=200, offset=0)
        managers = [(p.id, f"{p.name} ({p.staff_no})") for p in found.items]
    return ctx.render(
        "roster.html", status=code, title_id="nav.roster", days=days, names=names,
        on_duty=now, now_ids=now_ids, week=start.date(),
        prev_week=(start - dt.timedelta(days=7)).date(),
        next_week=(start + dt.timedelta(days=7)).date(),
        can_write=ctx.may(roster.add_shift), manager_options=managers,
        action_errors={"add": errors or {}}, form={"add": form or {"repeat": "1"}},
        problem=problem,
    )


@router.get("/roster", response_class=HTMLResponse)
def week_page(ctx: CtxDep, week: Annotated[dt.date | None, Query()] = None) -> Response:
    return _page(ctx, week)


@router.post("/roster", response_class=HTMLResponse)
async def add(ctx: CtxDep) -> Response:
    data = await ctx.form()
    try:
        repeat = int(str(data.get("repeat") or "1"))
    except ValueError:
        repeat = 0
    if not 1 <= repeat <= MAX_REPEAT:
        return _page(ctx, None, form=data, code=422,
                     errors={"repeat": ctx.t("form.max", limit=MAX_REPEAT) if repeat > 1
                             else ctx.t("form.min", limit=1)})
    try:
        body = ctx.body(roster.ShiftIn, data, SHIFT_KINDS)
        for week in range(repeat):
            shift = body.model_copy(update={
                "starts_at": body.starts_at + dt.timedelta(weeks=week),
                "ends_at": body.ends_at + dt.timedelta(weeks=week)})
            ctx.rest(roster.add_shift, body=shift)
    except FormInvalid as exc:
        return _page(ctx, None, form=data, errors=exc.errors, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _page(ctx, None, form=data, code=409,
                     problem=ctx.t("form.refused", detail=str(exc)))
    zone = ctx.runtime.settings.zone
    return ctx.redirect(ctx.url(f"/roster?week={body.starts_at.astimezone(zone).date()}"),
                        flash="created")


@router.post("/roster/{shift_id:uuid}/remove", response_class=HTMLResponse)
async def remove(ctx: CtxDep, shift_id: uuid.UUID) -> Response:
    await ctx.form()
    shift = ctx.rest(roster.get_shift, shift_id=shift_id)
    ctx.rest(roster.remove_shift, shift_id=shift_id)
    zone = ctx.runtime.settings.zone
    return ctx.redirect(ctx.url(f"/roster?week={shift.starts_at.astimezone(zone).date()}"),
                        flash="removed")
