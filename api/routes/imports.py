"""Bulk import of people with cards, units with owners, keys with slots (CSV or XLSX).

``…/preview`` shows every row's problem and writes nothing; ``POST /imports/{kind}`` writes
every row in one transaction with one ``import.applied`` event, or nothing at all (422 with
every problem, each as ``errors[]`` with ``loc: ["file", row, column]`` and the message in
Chinese and English). Templates are served in both formats. The logic is in
``kiosk.services.imports`` (and one module per kind), which the console calls directly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from api.deps import AuditDep, PrincipalDep, ReadSession, RuntimeDep, needs
from api.errors import FieldError, problem_response
from api.schemas import Out
from kiosk.errors import InvalidRequest
from kiosk.services import imports, tx
from kiosk.services.authz import Permission as P

router = APIRouter(tags=["bulk import"])

Kind = Literal["people", "units", "keys"]
Upload = Annotated[UploadFile, File(description=f"CSV (UTF-8 or GB18030) or XLSX, at most "
                                                f"{imports.MAX_BYTES // 1024 // 1024} MiB")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ProblemOut(Out):
    row: int
    column: str | None
    zh: str
    en: str


class PreviewOut(Out):
    kind: str
    rows: int
    ok: bool
    problems: list[ProblemOut]
    creates: dict[str, int]


class AppliedOut(Out):
    kind: str
    rows: int
    creates: dict[str, int]
    event_seq: int
    file_sha256: str


async def _read(file: UploadFile) -> bytes:
    blob = await file.read(imports.MAX_BYTES + 1)
    if len(blob) > imports.MAX_BYTES:
        raise InvalidRequest(f"an import file may be at most {imports.MAX_BYTES // 1024 // 1024} "
                             "MiB")
    return blob


@router.post(
    "/imports/{kind}/preview",
    response_model=PreviewOut,
    dependencies=[needs(P.IMPORTS_WRITE)],
    summary="Check an import file row by row; every problem listed, nothing written",
)
async def preview(kind: Kind, file: Upload, by: PrincipalDep, runtime: RuntimeDep,
                  session: ReadSession) -> PreviewOut:
    blob = await _read(file)
    result = imports.preview(session, imports.Context(by, runtime.settings), kind=kind,
                             blob=blob, filename=file.filename)
    return PreviewOut(kind=result.kind, rows=result.rows, ok=result.ok, creates=result.creates,
                      problems=[ProblemOut(row=p.row, column=p.column, zh=p.zh, en=p.en)
                                for p in result.problems])


@router.post(
    "/imports/{kind}",
    response_model=AppliedOut,
    status_code=201,
    dependencies=[needs(P.IMPORTS_WRITE)],
    summary="Import every row in one transaction with one audit event, or nothing (422)",
)
async def apply(kind: Kind, file: Upload, request: Request, by: PrincipalDep,
                runtime: RuntimeDep, audit: AuditDep) -> AppliedOut | JSONResponse:
    blob = await _read(file)
    try:
        with tx.write(audit) as session:
            done = imports.apply(session, audit, imports.Context(by, runtime.settings),
                                 kind=kind, blob=blob, filename=file.filename)
    except imports.ImportRefused as refused:
        return problem_response(request, 422, "import-refused", "Import refused", str(refused),
                                errors=[FieldError(loc=["file", p.row, p.column or ""],
                                                   msg=f"{p.zh} / {p.en}", type="import.row")
                                        for p in refused.problems])
    return AppliedOut(kind=done.kind, rows=done.rows, creates=done.creates,
                      event_seq=done.event_seq, file_sha256=done.file_sha256)


@router.get(
    "/imports/{kind}/template.{fmt}",
    response_class=Response,
    dependencies=[needs(P.IMPORTS_WRITE)],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                 XLSX: {"schema": {"type": "string", "format": "binary"}}}}},
    summary="The empty template of an import kind, with a help sheet in the XLSX",
)
def template(kind: Kind, fmt: Literal["csv", "xlsx"]) -> Response:
    blob = imports.template_csv(kind) if fmt == "csv" else imports.template_xlsx(kind)
    media = "text/csv; charset=utf-8" if fmt == "csv" else XLSX
    return Response(blob, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="import-{kind}.{fmt}"'})
