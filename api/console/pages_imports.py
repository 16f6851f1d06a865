"""Bulk import (issue 11): people with cards, units with owners, keys with slots, from CSV or
XLSX. Download the template; upload; the preview shows the file's rows with every row's
problems beside it (zh and en) and writes nothing; then import: all rows in one transaction
with one ``import.applied`` event, or nothing.

The routes live under ``/console/imports/…``: the ``imports`` path segment gives them the
8 MiB body limit of uploads (``api/limits.py``). The preview and the import run the REST
operations ``POST /imports/{kind}/preview`` and ``POST /imports/{kind}``, so the checks, the
permission (``imports:write``) and the audit event are the API's own. Between the preview
and the import the file travels back with the page (base64 in a hidden field), so the
server keeps nothing and the import checks the same bytes again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from typing import Any, Literal

from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from api.console.routes import router
from api.console.web import Ctx, CtxDep
from api.routes import imports as rest
from kiosk.errors import InvalidRequest, PermissionDenied
from kiosk.services import imports

KINDS: tuple[rest.Kind, ...] = ("people", "units", "keys")
PREVIEW_ROWS = 500
"""Rows shown in the preview table; every problem is listed whatever the file's length."""


def _page(ctx: Ctx, kind: str, *, code: int = 200, **values: Any) -> Response:
    columns = imports.kind_of(kind).COLUMNS
    values.setdefault("preview", None)
    return ctx.render("imports.html", status=code, title_id="nav.imports", kinds=KINDS,
                      kind=kind, columns=columns, **values)


@router.get("/imports", response_class=HTMLResponse)
def choose(ctx: CtxDep, kind: Literal["people", "units", "keys"] = "people") -> Response:
    """Choose the kind, download its template, upload a file."""
    if not ctx.may(rest.preview):
        raise PermissionDenied("bulk import needs imports:write")
    return _page(ctx, kind)


@router.get("/imports/{kind}/template.{fmt}")
def template(ctx: CtxDep, kind: Literal["people", "units", "keys"],
             fmt: Literal["csv", "xlsx"]) -> Response:
    answer: Response = ctx.rest(rest.template, kind=kind, fmt=fmt)
    return answer


async def _file_of(data: dict[str, Any]) -> tuple[bytes, str | None]:
    """The uploaded file, or the one the preview page carried back (base64)."""
    upload = data.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        blob = await upload.read(imports.MAX_BYTES + 1)
        return blob, upload.filename
    carried = data.get("blob")
    if isinstance(carried, str) and carried:
        try:
            return base64.b64decode(carried, validate=True), str(data.get("filename") or "") or None
        except (binascii.Error, ValueError):
            raise InvalidRequest("the carried file is damaged: upload it again") from None
    raise InvalidRequest("choose a file")


def _upload(blob: bytes, filename: str | None) -> UploadFile:
    return UploadFile(io.BytesIO(blob), filename=filename)


def _table(blob: bytes, filename: str | None,
           problems: list[Any]) -> tuple[list[tuple[int, list[str], list[Any]]], list[Any]]:
    """The file's rows numbered as in the spreadsheet (the header is row 1), each with its
    problems; and the problems of the file as a whole or of rows not shown."""
    by_row: dict[int, list[Any]] = {}
    for p in problems:
        by_row.setdefault(p.row, []).append(p)
    try:
        table = imports.read_table(blob, filename)
    except InvalidRequest:
        return [], problems
    shown = [(number, cells, by_row.pop(number, []))
             for number, cells in enumerate(table[1:PREVIEW_ROWS + 1], start=2)
             if any(c for c in cells)]
    rest_of = [p for row in sorted(by_row) for p in by_row[row]]
    return shown, rest_of


@router.post("/imports/{kind}/preview", response_class=HTMLResponse)
async def preview(ctx: CtxDep, kind: Literal["people", "units", "keys"]) -> Response:
    data = await ctx.form()
    try:
        blob, filename = await _file_of(data)
        result = await ctx.rest_async(rest.preview, kind=kind, file=_upload(blob, filename))
    except InvalidRequest as exc:
        return _page(ctx, kind, code=422,
                     file_error=ctx.t("form.refused", detail=str(exc)))
    rows, other = _table(blob, filename, result.problems)
    header = _header(blob, filename)
    return _page(ctx, kind, code=200 if result.ok else 422, preview=result, rows=rows,
                 header=header, other_problems=other,
                 blob=base64.b64encode(blob).decode("ascii"), filename=filename or "",
                 sha256=hashlib.sha256(blob).hexdigest())


def _header(blob: bytes, filename: str | None) -> list[str]:
    try:
        table = imports.read_table(blob, filename)
    except InvalidRequest:
        return []
    return table[0] if table else []


@router.post("/imports/{kind}", response_class=HTMLResponse)
async def apply(ctx: CtxDep, kind: Literal["people", "units", "keys"]) -> Response:
    """Import every row, or nothing (a refusal shows the preview again with its problems)."""
    data = await ctx.form()
    try:
        blob, filename = await _file_of(data)
        done = await ctx.rest_async(rest.apply, kind=kind, file=_upload(blob, filename))
    except InvalidRequest as exc:
        return _page(ctx, kind, code=422, file_error=ctx.t("form.refused", detail=str(exc)))
    if isinstance(done, JSONResponse):  # refused with every row's problem: nothing written
        result = await ctx.rest_async(rest.preview, kind=kind, file=_upload(blob, filename))
        rows, other = _table(blob, filename, result.problems)
        return _page(ctx, kind, code=422, preview=result, rows=rows,
                     header=_header(blob, filename), other_problems=other,
                     blob=base64.b64encode(blob).decode("ascii"), filename=filename or "",
                     sha256=hashlib.sha256(blob).hexdigest(),
                     file_error=ctx.t("imports.refused"))
    return _page(ctx, kind, applied=done)
