"""Audit: search the hash-chained log by rule, type, person, key and date; verify the chain
now; sign and export a checkpoint; export the matching events as CSV."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from api.console import labels
from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid
from api.routes import audit, events, people
from api.routes.events import EventTypeName
from api.schemas import KeyNumber, RuleId, Search
from kiosk.services.events import EventFilter

PAGE = 100
SEARCH_KINDS = {"rule": "optional", "type": "optional", "person_id": "uuid",
                "account": "optional", "key_number": "optional", "since": "optional",
                "until": "optional", "after": "int"}


class AuditSearch(BaseModel):
    """The search form, with the REST filter's own field types."""

    model_config = ConfigDict(extra="forbid")
    rule: RuleId | None = None
    type: EventTypeName | None = None
    person_id: Any = None
    account: Search | None = None
    key_number: KeyNumber | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    after: int | None = None


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _filter(ctx: Ctx, search: AuditSearch) -> EventFilter:
    zone = ctx.runtime.settings.zone

    def start(day: dt.date | None) -> dt.datetime | None:
        return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC) \
            if day else None

    actor = str(search.person_id) if search.person_id else (
        f"account:{search.account}" if search.account else None)
    return EventFilter(
        type=search.type if search.type and "." in search.type else None,
        type_prefix=search.type if search.type and "." not in search.type else None,
        key_number=search.key_number, actor=actor, rule=search.rule,
        since=start(search.since),
        until=start(search.until + dt.timedelta(days=1)) if search.until else None,
        after=search.after or 0,
    )


def _search(ctx: Ctx, request: Request) -> tuple[AuditSearch, dict[str, str]]:
    data = dict(request.query_params)
    data.pop("lang", None)
    try:
        found = ctx.body(AuditSearch, data, SEARCH_KINDS)
    except FormInvalid as exc:
        return AuditSearch(), exc.errors
    return found, {}


def _page(ctx: Ctx, request: Request, *, verify: Any = None, signed: Any = None) -> Response:
    search, errors = _search(ctx, request)
    page = None
    if not errors:
        page = ctx.rest(events.list_events, where=_filter(ctx, search), limit=PAGE)
    staff = ctx.rest(people.list_people, department_id=None, role=None, active=None, q=None,
                     limit=200, offset=0) if ctx.may(people.list_people) else None
    checkpoints = ctx.rest(audit.list_checkpoints, limit=10, offset=0)
    actor_ids = {_uuid(a) for e in (page.items if page else []) for a in e.actors}
    names = {str(k): v for k, v in labels.people(ctx.runtime.audit, actor_ids).items()}
    query = {k: v for k, v in request.query_params.items() if k not in ("after", "lang")}
    return ctx.render(
        "audit.html", status=422 if errors else 200, title_id="nav.audit", page=page,
        errors=errors, form=dict(request.query_params), names=names,
        person_options=[(p.id, f"{p.name} ({p.staff_no})") for p in staff.items] if staff
        else [], query=query, checkpoints=checkpoints.items, verify=verify, signed=signed,
        can_sign=ctx.may(audit.sign_checkpoint),
    )


@router.get("/audit", response_class=HTMLResponse)
def search_page(
    ctx: CtxDep, request: Request, rule: str | None = None, type: str | None = None,
    person_id: str | None = None, account: str | None = None, key_number: str | None = None,
    since: str | None = None, until: str | None = None, after: str | None = None,
) -> Response:
    return _page(ctx, request)


@router.get("/audit/export.csv")
def export_csv(
    ctx: CtxDep, request: Request, rule: str | None = None, type: str | None = None,
    person_id: str | None = None, account: str | None = None, key_number: str | None = None,
    since: str | None = None, until: str | None = None, after: str | None = None,
) -> Response:
    search, errors = _search(ctx, request)
    if errors:
        return _page(ctx, request)
    response: Response = ctx.rest(events.export_csv, where=_filter(ctx, search))
    return response


@router.post("/audit/verify", response_class=HTMLResponse)
async def verify(ctx: CtxDep, request: Request) -> Response:
    await ctx.form()
    return _page(ctx, request, verify=ctx.rest(audit.verify))


@router.post("/audit/checkpoint", response_class=HTMLResponse)
async def sign(ctx: CtxDep, request: Request) -> Response:
    await ctx.form()
    return _page(ctx, request, signed=ctx.rest(audit.sign_checkpoint))


@router.get("/audit/checkpoints/{seq:int}")
def export_checkpoint(ctx: CtxDep, seq: int) -> Response:
    if not 1 <= seq <= 2**62:
        return _page(ctx, ctx.request)
    document = ctx.rest(audit.export_checkpoint, seq=seq)
    name = f"checkpoint-{seq}.json"
    return Response(json.dumps(document, indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
