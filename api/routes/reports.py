"""K9 reports (and H1 handover reports): list, read, download, acknowledge. Never deleted.

There is no DELETE here on purpose: K9 says a mismatch or an overdue key "cannot be
hidden". A download renders the stored JSON after checking it against its SHA-256, so the
file is what was generated, in either language.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BeforeValidator

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import Limit, Note, Offset, Out, Page, Strict, page_of
from kiosk.reports import render
from kiosk.reports import store as report_store
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
def get_report(report_id: uuid.UUID, session: ReadSession) -> ReportDetail:
    row = report_store.get_report(session, report_id=report_id)
    base = ReportOut.model_validate(row).model_dump()
    return ReportDetail(**base, content=report_store.data_of(row))


@router.get(
    "/reports/{report_id:uuid}/download",
    response_class=Response,
    dependencies=[needs(P.REPORTS_READ)],
    responses={200: {"content": {
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}},
    }}},
    summary="The stored report as PDF (Chinese glyphs embedded) or CSV, in zh-CN or English",
)
def download(
    report_id: uuid.UUID,
    session: ReadSession,
    format: Literal["pdf", "csv"] = "pdf",
    lang: Literal["zh", "en"] | None = None,
) -> Response:
    row = report_store.get_report(session, report_id=report_id)
    data = report_store.data_of(row)
    language: render.Language = lang or ("en" if row.language == "en" else "zh")
    name = f"{row.kind}-{row.period_start.isoformat()}-{row.id.hex[:8]}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return Response(render.render_csv(data, language),
                        media_type="text/csv; charset=utf-8", headers=headers)
    footer = f"report {row.id} · sha256 {row.sha256[:16]}…"
    return Response(render.render_pdf(data, language, footer=footer),
                    media_type="application/pdf", headers=headers)


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
