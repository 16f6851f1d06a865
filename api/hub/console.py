"""The hub's console page for the fleet (issue 12): sites, their cabinets, hub alarms and a
cabinet's log as the hub holds it, with a site and cabinet filter. It runs the ``/hub/v1``
REST reads through ``Ctx.rest`` like every console page, so an account scoped to one site
(``kiosk.fleet.scope``) sees that site only, here as in the API. Served by ``kiosk hub``
only (``api.hub.app``); a cabinet's console has no fleet page.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from api.console.web import BASE, ConsoleRoute, CtxDep
from api.hub import routes
from kiosk.errors import NotFound

router = APIRouter(prefix=BASE, route_class=ConsoleRoute, include_in_schema=False)
EVENTS_SHOWN = 50
KEYS_SHOWN = 1000
Name = Annotated[str | None, Query(max_length=64, pattern=r"^[\w.-]*$")]


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@router.get("/fleet", response_class=HTMLResponse)
def fleet_page(ctx: CtxDep, site: Name = None, cabinet: Name = None) -> Response:
    sites = ctx.rest(routes.list_sites)
    cabinets: list[dict[str, Any]] = ctx.rest(routes.list_cabinets, site=site or None,
                                               after=None, limit=1000)
    chosen = next((c for c in cabinets if c["cabinet_id"] == cabinet), None)
    alarms = ctx.rest(routes.list_alarms, cabinet_id=chosen["cabinet_id"] if chosen else None)
    if not cabinet:
        shown = {c["cabinet_id"] for c in cabinets}
        alarms = [a for a in alarms if a["cabinet_id"] in shown]
    events: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    if cabinet and chosen is None:
        raise NotFound(f"no enrolled cabinet {cabinet}")
    if chosen is not None:
        events = ctx.rest(routes.list_events, cabinet_id=chosen["cabinet_id"],
                          after_seq=max(0, chosen["acked_seq"] - EVENTS_SHOWN),
                          limit=EVENTS_SHOWN, type=None, before_seq=None)
        if ctx.can("keys:read"):
            keys = ctx.rest(routes.list_fleet_keys, site=None, cabinet_id=chosen["cabinet_id"],
                            after=None, limit=KEYS_SHOWN)
    for c in cabinets:
        c["last_seen"] = _when(c["last_seen_at"])
    return ctx.render("fleet.html", title_id="nav.fleet", sites=sites, cabinets=cabinets,
                      alarms=alarms, events=list(reversed(events)), keys=keys,
                      chosen={"site": site or "", "cabinet": cabinet or ""})
