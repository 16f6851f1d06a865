"""K9 reports (and H1 handover reports): generate on demand, preview, list, read, download,
verify, acknowledge. Never deleted.

There is no DELETE here on purpose: K9 says a mismatch or an overdue key "cannot be
hidden". A download serves the bytes stored when the report was issued, after checking them
against the SHA-256 logged in its ``report.generated`` event, so the file a person gets is
the file the register names, in either language. The logic lives in ``kiosk.services.reports``
and ``kiosk.reports.store``; these routes only translate HTTP.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BeforeValidator, Field

from api.deps import AuditDep, PrincipalDep, ReadSession, RuntimeDep, needs
from api.schemas import Limit, Note, Offset, Out, Page, Strict, page_of
from kiosk.reports import store as report_store
from kiosk.reports.data import canonical
from kiosk.services import reports as on_demand
from kiosk.services import tx
from kiosk.services.authz import Permission as P

router = APIRouter(tags=["reports (K9)"])

Kind = Literal["daily", "overdue", "key", "person", "handover"]


def _iso_day(value: object) -> object:
    """Only YYYY-MM-DD: pydantic would otherwise read ``0`` as 1970-01-01."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected a local day as YYYY-MM-DD")
    return value


Day = Annotated[dt.date, BeforeValidator(_iso_day)]


class ReportOut(Out):
    id: uuid.UUID
    kind: str
    subject: str | None
    period_start: dt.date
    period_end: dt.date
    language: str
    generated_at: dt.datetime
    sha256: str
    event_seq: int | None
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    acknowledgement_note: str | None


class ReportDetail(ReportOut):
    content: dict[str, Any]


class AcknowledgeIn(Strict):
    note: Note | None = None


KeyNumber = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^\x00-\x1f\x7f]+$")]
StaffNo = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^\x00-\x1f\x7f]+$")]


class GenerateIn(Strict):
    """What to report on: ``day`` for daily (default today); ``key_number`` or ``staff_no``
    with ``start``/``end`` for the histories (default the last 30 days, at most 366)."""

    kind: on_demand.OnDemandKind
    day: Day | None = None
    key_number: KeyNumber | None = None
    staff_no: StaffNo | None = None
    start: Day | None = None
    end: Day | None = None
    language: Literal["zh", "en"] = "zh"

    def request(self) -> on_demand.ReportRequest:
        return on_demand.ReportRequest(kind=self.kind, day=self.day, key_number=self.key_number,
                                       staff_no=self.staff_no, start=self.start, end=self.end)


class VerifyOut(Out):
    report_id: uuid.UUID
    ok: bool
    event_seq: int | None
    document_no: str | None
    files: dict[str, str]
    problems: list[str]


@router.get(
    "/reports/preview",
    response_class=Response,
    dependencies=[needs(P.REPORTS_READ)],
    responses={200: {"content": {
        "application/json": {"schema": {"type": "object"}},
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}},
    }}},
    summary="K9: a report as it would be issued now, as JSON, PDF or CSV; nothing is stored",
)
def preview(
    runtime: RuntimeDep,
    session: ReadSession,
    kind: on_demand.OnDemandKind,
    day: Day | None = None,
    key_number: Annotated[KeyNumber | None, Query()] = None,
    staff_no: Annotated[StaffNo | None, Query()] = None,
    start: Day | None = None,
    end: Day | None = None,
    format: Literal["json", "pdf", "csv"] = "json",
    lang: Literal["zh", "en"] = "zh",
) -> Response:
    req = on_demand.ReportRequest(kind=kind, day=day, key_number=key_number, staff_no=staff_no,
                                  start=start, end=end)
    if format == "json":
        data = on_demand.preview_json(session, runtime.settings, req)
        return Response(_json(data), media_type="application/json")
    shown = on_demand.preview(session, runtime.settings, req, fmt=format, lang=lang)
    return Response(shown.content, media_type=shown.media_type, headers={
        "Content-Disposition": f'inline; filename="{shown.filename}"'})


def _json(data: dict[str, Any]) -> bytes:
    return canonical(data).encode("utf-8")


@router.post(
    "/reports",
    response_model=ReportOut,
    status_code=201,
    dependencies=[needs(P.REPORTS_GENERATE)],
    summary="K9: issue a report now (stored with its files and event; never deleted)",
)
def generate(body: GenerateIn, by: PrincipalDep, runtime: RuntimeDep, audit: AuditDep) -> ReportOut:
    with tx.write(audit) as session:
        row = on_demand.issue(session, audit, runtime.settings, body.request(), by=by,
                              language=body.language)
        return ReportOut.model_validate(row)


@router.get("/reports", response_model=Page[ReportOut], dependencies=[needs(P.REPORTS_READ)])
def list_reports(
    session: ReadSession,
    kind: Kind | None = None,
    day: Annotated[Day | None, Query(description="Reports covering this local day.")] = None,
    acknowledged: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ReportOut]:
    rows, total = report_store.list_reports(
        session, kind=kind, day=day, acknowledged=acknowledged, limit=limit, offset=offset
    )
    return page_of(ReportOut, rows, total, limit, offset)


@router.get(
    "/reports/{report_id:uuid}", response_model=ReportDetail, dependencies=[needs(P.REPORTS_READ)]
)
def get_report(report_id: uuid.UUID, session: ReadSession, runtime: RuntimeDep) -> ReportDetail:
    row = report_store.get_report(session, report_id=report_id)
    base = ReportOut.model_validate(row).model_dump()
    return ReportDetail(**base, content=report_store.genuine_data(
        session, row, cabinet_id=runtime.settings.cabinet_id))


@router.get(
    "/reports/{report_id:uuid}/verify",
    response_model=VerifyOut,
    dependencies=[needs(P.REPORTS_READ)],
    summary="K9: does the stored report (content and files) match its event in the register?",
)
def verify(report_id: uuid.UUID, session: ReadSession, runtime: RuntimeDep) -> VerifyOut:
    row = report_store.get_report(session, report_id=report_id)
    result = report_store.check(session, row, cabinet_id=runtime.settings.cabinet_id)
    return VerifyOut(report_id=row.id, ok=result.ok, event_seq=result.event_seq,
                     document_no=result.document_no, files=result.files,
                     problems=result.problems)


@router.get(
    "/reports/{report_id:uuid}/download",
    response_class=Response,
    dependencies=[needs(P.REPORTS_READ)],
    responses={200: {"content": {
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}},
    }}},
    summary="The issued report's stored PDF (Chinese glyphs embedded) or CSV, in zh-CN or "
            "English, checked against its event first (X-Report-SHA256 is the file's hash)",
)
def download(
    report_id: uuid.UUID,
    session: ReadSession,
    runtime: RuntimeDep,
    format: Literal["pdf", "csv"] = "pdf",
    lang: Literal["zh", "en"] | None = None,
) -> Response:
    row = report_store.get_report(session, report_id=report_id)
    language = lang or ("en" if row.language == "en" else "zh")
    file = report_store.download(session, row, cabinet_id=runtime.settings.cabinet_id,
                                 lang=language, fmt=format, site=runtime.settings.site)
    name = f"{row.kind}-{row.period_start.isoformat()}-{row.id.hex[:8]}-{language}.{format}"
    return Response(file.content, media_type=file.media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Report-SHA256": file.sha256,
    })


@router.post(
    "/reports/{report_id:uuid}/acknowledge",
    response_model=ReportOut,
    dependencies=[needs(P.REPORTS_ACKNOWLEDGE)],
    summary="K9: the supervisor has read the report (once; recorded and logged)",
)
def acknowledge(
    report_id: uuid.UUID, body: AcknowledgeIn, by: PrincipalDep, audit: AuditDep
) -> ReportOut:
    with tx.write(audit) as session:
        row = report_store.acknowledge(
            session, audit, by=by, report_id=report_id, note=body.note
        )
        return ReportOut.model_validate(row)
