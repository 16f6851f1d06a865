"""H1 handovers: the register's handovers, one to read and print (a print stylesheet and
the stored report as PDF/CSV, from the REST download)."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import CtxDep
from api.routes import handovers
from kiosk.store.models import HandoverState


@router.get("/handovers", response_class=HTMLResponse)
def list_page(ctx: CtxDep, state: HandoverState | None = None) -> Response:
    page = ctx.rest(handovers.list_handovers, state=state, limit=100, offset=0)
    names = labels.people(ctx.runtime.audit, [h.outgoing_id for h in page.items] +
                          [h.incoming_id for h in page.items])
    return ctx.render("handovers.html", title_id="nav.handovers", items=page.items,
                      total=page.total, names=names, states=list(HandoverState),
                      chosen=state.value if state else "")


@router.get("/handovers/{handover_id:uuid}", response_class=HTMLResponse)
def detail_page(ctx: CtxDep, handover_id: uuid.UUID) -> Response:
    item = ctx.rest(handovers.get_handover, handover_id=handover_id)
    names = labels.people(ctx.runtime.audit, [item.outgoing_id, item.incoming_id])
    return ctx.render("handover.html", title_id="nav.handovers", item=item, names=names)


@router.get("/handovers/{handover_id:uuid}/download")
def download(ctx: CtxDep, handover_id: uuid.UUID, format: Literal["pdf", "csv"] = "pdf"
             ) -> Response:
    response: Response = ctx.rest(handovers.download, handover_id=handover_id, format=format,
                                  lang=ctx.lang)
    return response
