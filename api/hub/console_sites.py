"""The hub's console pages by site (issue 12): keys out, the cabinets' alarms, issued
reports, keys received (intake), handovers, keys, one cabinet's log and a site's merged
log, each with a site and cabinet filter, and the form for a site's settings. They run
the ``/hub/v1`` reads and the settings write through ``Ctx.rest`` like every console page,
so an account scoped to a site sees and edits that site only (another site's name in the
address answers 404, as if it did not exist). Served by ``kiosk hub`` only.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from api.console.web import Ctx, CtxDep, paging
from api.hub import routes, site_routes
from api.hub.console import router
from kiosk.errors import InvalidRequest, PermissionDenied
from kiosk.fleet import site_lists
from kiosk.fleet.site_settings import HUB_SECTIONS
from kiosk.store.models import HandoverState

Name = Annotated[str | None, Query(max_length=64, pattern=r"^[\w.-]*$")]
Word = Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]*$")]
EventType = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]*$")]
PageNo = Annotated[int | None, Query(ge=1, le=10_000)]
SECTIONS = tuple(HUB_SECTIONS)  # the order docs/fleet.md names them


def _when(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _filters(ctx: Ctx, site: str | None, cabinet: str | None) -> dict[str, Any]:
    """The site and cabinet choices the caller sees, for the filter controls."""
    sites = ctx.rest(routes.list_sites)
    cabinets = [c for s in sites for c in s["cabinets"] if not site or s["code"] == site]
    return {"sites": sites, "cabinets": cabinets,
            "chosen": {"site": site or "", "cabinet": cabinet or ""}}


def _list(ctx: Ctx, what: str, endpoint: Any, site: str | None, cabinet: str | None,
          page: int | None, **extra: Any) -> Response:
    limit, offset = paging(page)
    found = ctx.rest(endpoint, site=site or None, cabinet_id=cabinet or None, limit=limit,
                     offset=offset, **extra)
    for item in found["items"]:
        for field in ("drawn_at", "due_at", "returned_at", "raised_at", "generated_at",
                      "received_at", "started_at", "accepted_at"):
            if field in item:
                item[field] = _when(item[field])
    filters = _filters(ctx, site, cabinet)
    filters["chosen"].update({k: getattr(v, "value", v) or "" for k, v in extra.items()})
    return ctx.render("fleet_lists.html", title_id=f"fleet.tab.{what}", what=what,
                      items=found["items"], total=found["total"],
                      paged=(found["total"], limit, offset), **filters)


@router.get("/fleet/loans", response_class=HTMLResponse)
def loans_page(ctx: CtxDep, site: Name = None, cabinet: Name = None,
               state: site_lists.LoanState = site_lists.LoanState.OUT,
               page: PageNo = None) -> Response:
    return _list(ctx, "loans", site_routes.list_site_loans, site, cabinet, page, state=state)


@router.get("/fleet/alarms", response_class=HTMLResponse)
def alarms_page(ctx: CtxDep, site: Name = None, cabinet: Name = None, state: Word = None,
                page: PageNo = None) -> Response:
    return _list(ctx, "alarms", site_routes.list_cabinet_alarms, site, cabinet, page,
                 state=state or None)


@router.get("/fleet/reports", response_class=HTMLResponse)
def reports_page(ctx: CtxDep, site: Name = None, cabinet: Name = None,
                 page: PageNo = None) -> Response:
    return _list(ctx, "reports", site_routes.list_site_reports, site, cabinet, page,
                 kind=None)


@router.get("/fleet/intake", response_class=HTMLResponse)
def intake_page(ctx: CtxDep, site: Name = None, cabinet: Name = None,
                page: PageNo = None) -> Response:
    return _list(ctx, "intake", site_routes.list_site_intakes, site, cabinet, page)


@router.get("/fleet/handovers", response_class=HTMLResponse)
def handovers_page(ctx: CtxDep, site: Name = None, cabinet: Name = None,
                   state: HandoverState | None = None, page: PageNo = None) -> Response:
    return _list(ctx, "handovers", site_routes.list_site_handovers, site, cabinet, page,
                 state=state)


@router.get("/fleet/reports/{report_id:uuid}/file")
def report_file(ctx: CtxDep, report_id: uuid.UUID, format: Literal["pdf", "csv"] = "pdf",
                lang: Literal["zh", "en"] | None = None) -> Response:
    """The very bytes the cabinet issued, as the hub holds them (``GET /hub/v1/reports/{id}
    /file``, so the site scope and ``reports:read`` are the API's)."""
    response: Response = ctx.rest(site_routes.get_site_report_file, report_id=report_id,
                                  format=format, lang=lang)
    return response


# ------------------------------------------------------------------ settings per site
def _settings_page(ctx: Ctx, site: str | None, *, form: dict[str, str] | None = None,
                   errors: dict[str, str] | None = None, code: int = 200) -> Response:
    sites = ctx.rest(routes.list_sites)
    chosen = site or (sites[0]["code"] if len(sites) == 1 else "")
    held: dict[str, Any] = {}
    if chosen:
        held = ctx.rest(routes.get_site_settings, site_code=chosen)["settings"]
    shown = form if form is not None else {
        name: json.dumps(held[name], ensure_ascii=False, indent=2) if name in held else ""
        for name in SECTIONS}
    return ctx.render("fleet_settings.html", status=code, title_id="fleet.tab.settings",
                      what="settings", sites=sites, chosen={"site": chosen}, sections=SECTIONS,
                      form=shown, errors=errors or {},
                      can_write=ctx.may(routes.put_site_settings))


@router.get("/fleet/settings", response_class=HTMLResponse)
def settings_page(ctx: CtxDep, site: Name = None) -> Response:
    return _settings_page(ctx, site or None)


@router.post("/fleet/settings/{site_code}", response_class=HTMLResponse)
async def save_settings(ctx: CtxDep, site_code: str) -> Response:
    """Each section is a JSON object as the config file's section would hold it; an empty
    box leaves the section to each cabinet's file. The REST write checks it all."""
    data = await ctx.form()
    if not ctx.may(routes.put_site_settings):  # refused before any box is read
        raise PermissionDenied("changing a site's settings needs cabinets:write")
    form = {name: str(data.get(name) or "") for name in SECTIONS}
    doc: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in form.items():
        if not text.strip():
            continue
        try:
            doc[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            errors[name] = ctx.t("fleet.settings_json", detail=f"{exc.msg} ({exc.lineno}:"
                                                                f"{exc.colno})")
    if not errors:
        try:
            ctx.rest(routes.put_site_settings, site_code=site_code, body=doc)
        except InvalidRequest as exc:
            where = str(exc).split(".", 1)[0].split(":", 1)[0]
            errors[where if where in SECTIONS else "_"] = str(exc).replace("Value error, ", "")
    if errors:
        return _settings_page(ctx, site_code, form=form, errors=errors, code=422)
    return ctx.redirect(ctx.url(f"/fleet/settings?site={site_code}"), flash="saved")


# ----------------------------------------------------------- keys and a cabinet's log
KEYS_PAGE = 50
EVENTS_PAGE = 50
LOG_END = 2**63 - 1
"""``before_seq`` for the newest page: past any sequence number a log can reach."""


@router.get("/fleet/keys", response_class=HTMLResponse)
def keys_page(ctx: CtxDep, site: Name = None, cabinet: Name = None,
              after: Annotated[str | None, Query(max_length=32)] = None) -> Response:
    """The keys homed at the site's (or cabinet's) cabinets, by key number, a page at a
    time (``after``: the last key number shown)."""
    found = ctx.rest(routes.list_fleet_keys, site=site or None, cabinet_id=cabinet or None,
                     after=after or None, limit=KEYS_PAGE + 1)
    more = None
    if len(found) > KEYS_PAGE:
        found = found[:KEYS_PAGE]
        more = found[-1]["key_number"]
    return ctx.render("fleet_log.html", title_id="fleet.tab.keys", what="keys", items=found,
                      more=more, **_filters(ctx, site, cabinet))


@router.get("/fleet/events", response_class=HTMLResponse)
def events_page(ctx: CtxDep, site: Name = None, cabinet: Name = None, type: EventType = None,
                before: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """One cabinet's log as the hub holds it, newest first, by type; each cabinet's log is
    its own chain (numbered per cabinet), so the page asks for a cabinet first. A cabinet
    outside the caller's site is not there (404), like one never enrolled."""
    filters = _filters(ctx, site, cabinet)
    filters["chosen"]["type"] = type or ""
    items: list[dict[str, Any]] = []
    more = None
    if cabinet:
        items = ctx.rest(routes.list_events, cabinet_id=cabinet, after_seq=0,
                         limit=EVENTS_PAGE + 1, type=type or None, before_seq=before or LOG_END)
        if len(items) > EVENTS_PAGE:
            items = items[:EVENTS_PAGE]
            more = items[-1]["seq"]
        for e in items:
            e["at"] = _when(e["at"])
    return ctx.render("fleet_log.html", title_id="fleet.tab.events", what="events",
                      items=items, more=more, **filters)


@router.get("/fleet/log", response_class=HTMLResponse)
def site_log_page(ctx: CtxDep, site: Name = None, cabinet: Name = None,
                  type: EventType = None, before: site_routes.LogPosition = None) -> Response:
    """Every cabinet's events of the chosen site (or of all the caller sees) in one list,
    newest first by their time, of one type if one is asked; each row names its cabinet
    and seq, since each cabinet's log is its own chain and their clocks need not agree
    (``kiosk.fleet.site_log``)."""
    found = ctx.rest(site_routes.list_site_events, site=site or None,
                     cabinet_id=cabinet or None, type=type or None, before=before or None,
                     limit=EVENTS_PAGE)
    for e in found["items"]:
        e["at"] = _when(e["at"])
    filters = _filters(ctx, site, cabinet)
    filters["chosen"]["type"] = type or ""
    return ctx.render("fleet_log.html", title_id="fleet.tab.log", what="log",
                      items=found["items"], more=found["next"], **filters)
