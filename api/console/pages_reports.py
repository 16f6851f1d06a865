"""K9 reports: the stored reports, read, download as PDF or CSV, acknowledge. Generating a
report on demand is being built elsewhere (the navigation names it as coming)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi.responses import HTMLResponse, Response

from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid
from api.routes import reports
from kiosk.errors import Conflict, InvalidRequest

KINDS = ["daily", "overdue", "key", "person", "handover"]


@router.get("/reports", response_class=HTMLResponse)
def list_page(ctx: CtxDep, kind: reports.Kind | None = None,
              acknowledged: bool | None = None) -> Response:
    page = ctx.rest(reports.list_reports, kind=kind, day=None, acknowledged=acknowledged,
                    limit=100, offset=0)
    return ctx.render("reports.html", title_id="nav.reports", items=page.items,
                      total=page.total, kinds=KINDS,
                      chosen={"kind": kind or "", "acknowledged": "" if acknowledged is None
                              else str(acknowledged).lower()})


def _detail(ctx: Ctx, report_id: uuid.UUID, *, errors: dict[str, str] | None = None,
            form: dict[str, Any] | None = None, problem: str | None = None,
            code: int = 200) -> Response:
    item = ctx.rest(reports.get_report, report_id=report_id)
    return ctx.render("report.html", status=code, title_id="nav.reports", item=item,
                      can_ack=ctx.may(reports.acknowledge) and item.acknowledged_at is None,
                      action_errors={"ack": errors or {}}, form={"ack": form or {}},
                      problem=problem)


@router.get("/reports/{report_id:uuid}", response_class=HTMLResponse)
def detail_page(ctx: CtxDep, report_id: uuid.UUID) -> Response:
    return _detail(ctx, report_id)


@router.get("/reports/{report_id:uuid}/download")
def download(ctx: CtxDep, report_id: uuid.UUID, format: Literal["pdf", "csv"] = "pdf"
             ) -> Response:
    response: Response = ctx.rest(reports.download, report_id=report_id, format=format,
                                  lang=ctx.lang)
    return response


@router.post("/reports/{report_id:uuid}/acknowledge", response_class=HTMLResponse)
async def acknowledge(ctx: CtxDep, report_id: uuid.UUID) -> Response:
    data = await ctx.form()
    try:
        body = ctx.body(reports.AcknowledgeIn, data, {"note": "optional"})
        ctx.rest(reports.acknowledge, report_id=report_id, body=body)
    except FormInvalid as exc:
        return _detail(ctx, report_id, errors=exc.errors, form=data, code=422)
    except (InvalidRequest, Conflict) as exc:
        return _detail(ctx, report_id, form=data, code=409,
                       problem=ctx.t("form.refused", detail=str(exc)))
    return ctx.redirect(ctx.url(f"/reports/{report_id}"), flash="acknowledged")
