"""K9 reports: generate on demand (daily, overdue, key history, person history): preview
without storing (in the page, or the PDF opened), issue (stored, never deleted); the stored
reports: read, download as PDF or CSV, acknowledge. Each action runs the REST operation it
mirrors (``GET /reports/preview``, ``POST /reports``...), so its checks are the API's."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse, Response

from api.console.routes import router
from api.console.web import Ctx, CtxDep, FormInvalid
from api.routes import reports
from kiosk.errors import Conflict, InvalidRequest, NotFound, PermissionDenied

KINDS = ["daily", "overdue", "key", "person", "handover"]


ON_DEMAND = ["daily", "overdue", "key", "person"]
GENERATE_KINDS = {"kind": "text", "day": "optional", "key_number": "optional",
                  "staff_no": "optional", "start": "optional", "end": "optional",
                  "language": "text"}


def _generate_page(ctx: Ctx, *, form: dict[str, Any] | None = None,
                   errors: dict[str, str] | None = None, problem: str | None = None,
                   preview: dict[str, Any] | None = None, query: str = "",
                   code: int = 200) -> Response:
    return ctx.render(
        "report_new.html", status=code, title_id="reports.generate", kinds=ON_DEMAND,
        action_errors={"gen": errors or {}},
        form={"gen": form or {"kind": "daily", "language": ctx.lang}}, problem=problem,
        preview=preview, query=query, can_issue=ctx.may(reports.generate),
    )


def _request_of(ctx: Ctx, data: dict[str, Any]) -> reports.GenerateIn:
    """The form as the REST body (the same model validates it as for an API client)."""
    values = {k: v for k, v in data.items() if k in GENERATE_KINDS}
    values.setdefault("language", ctx.lang)
    body: reports.GenerateIn = ctx.body(reports.GenerateIn, values, GENERATE_KINDS)
    return body


def _beside(exc: InvalidRequest | NotFound, body: reports.GenerateIn | None,
            ctx: Ctx) -> dict[str, str]:
    """The service's refusal beside the field it is about (a missing key number...)."""
    text = str(exc)
    for name in ("key_number", "staff_no"):
        if f"needs {name}" in text:
            return {name: ctx.t("form.required")}
    for name in ("key_number", "staff_no"):
        if name in text or (isinstance(exc, NotFound) and body is not None
                            and getattr(body, name)):
            return {name: ctx.t("form.refused", detail=text)}
    field = "day" if "day" in text or "begun" in text else (
        "start" if "start" in text or "days" in text else "_")
    return {field: ctx.t("form.refused", detail=text)}


def _preview_query(body: reports.GenerateIn) -> dict[str, Any]:
    return {"kind": body.kind, "day": body.day, "key_number": body.key_number,
            "staff_no": body.staff_no, "start": body.start, "end": body.end}


@router.get("/reports/new", response_class=HTMLResponse)
def generate_page(ctx: CtxDep, kind: str | None = None, day: str | None = None,
                  key_number: str | None = None, staff_no: str | None = None,
                  start: str | None = None, end: str | None = None,
                  language: str | None = None) -> Response:
    """The form; with ``kind`` given, also the preview (``GET /reports/preview``): the report
    as it would be issued now, shown in the page and stored nowhere."""
    if not ctx.may(reports.preview):
        raise PermissionDenied("the preview of a report needs reports:read")
    if kind is None:
        return _generate_page(ctx)
    data = {"kind": kind, "day": day, "key_number": key_number, "staff_no": staff_no,
            "start": start, "end": end, "language": language or ctx.lang}
    shown = {k: v for k, v in data.items() if v}
    body = None
    try:
        body = _request_of(ctx, data)
        answer = ctx.rest(reports.preview, **_preview_query(body), format="json",
                          lang=body.language)
    except FormInvalid as exc:
        return _generate_page(ctx, form=shown, errors=exc.errors, code=422)
    except (InvalidRequest, NotFound) as exc:
        return _generate_page(ctx, form=shown, errors=_beside(exc, body, ctx), code=422)
    return _generate_page(ctx, form=shown, preview=json.loads(answer.body),
                          query=urlencode(shown))


@router.get("/reports/preview.{fmt}")
def preview_file(ctx: CtxDep, fmt: Literal["pdf", "csv"], kind: str, day: str | None = None,
                 key_number: str | None = None, staff_no: str | None = None,
                 start: str | None = None, end: str | None = None,
                 language: str | None = None) -> Response:
    """The preview as the PDF (to print) or CSV it would be issued as; nothing stored."""
    data = {"kind": kind, "day": day, "key_number": key_number, "staff_no": staff_no,
            "start": start, "end": end, "language": language or ctx.lang}
    try:
        body = _request_of(ctx, data)
    except FormInvalid as exc:
        raise InvalidRequest("; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
    answer: Response = ctx.rest(reports.preview, **_preview_query(body), format=fmt,
                                lang=body.language)
    return answer


@router.post("/reports/new", response_class=HTMLResponse)
async def generate(ctx: CtxDep) -> Response:
    """Issue the report (``POST /reports``): stored with its files and event, then shown."""
    data = await ctx.form()
    shown = {k: v for k, v in data.items() if k in GENERATE_KINDS and v}
    body = None
    try:
        body = _request_of(ctx, data)
        row = ctx.rest(reports.generate, body=body)
    except FormInvalid as exc:
        return _generate_page(ctx, form=shown, errors=exc.errors, code=422)
    except (InvalidRequest, NotFound) as exc:
        return _generate_page(ctx, form=shown, errors=_beside(exc, body, ctx), code=422)
    return ctx.redirect(ctx.url(f"/reports/{row.id}"), flash="issued")


@router.get("/reports", response_class=HTMLResponse)
def list_page(ctx: CtxDep, kind: reports.Kind | None = None,
              acknowledged: bool | None = None) -> Response:
    page = ctx.rest(reports.list_reports, kind=kind, day=None, acknowledged=acknowledged,
                    limit=100, offset=0)
    return ctx.render("reports.html", title_id="nav.reports", items=page.items,
                      total=page.total, kinds=KINDS, can_generate=ctx.may(reports.preview),
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
