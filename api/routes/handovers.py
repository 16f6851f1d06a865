"""H1 shift handovers: start one remotely, read and print them, cancel a waiting one.

Starting through the API signs as the caller's own account, which must be linked to a
custodian, duty manager or supervisor: the account is the outgoing signature. Cancelling
someone's waiting handover is for supervisors and admins (at the cabinet, the outgoing
cancels their own with the screen's Cancel button). There is
deliberately no "accept" here: the incoming staff member signs by tapping a badge at the
cabinet (the kiosk screen offers the waiting handover), because accepting the register
means standing in front of the keys. The accepted report is also a K9 report
(``/reports?kind=handover``), acknowledged by a supervisor and never deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from api.deps import AuditDep, PrincipalDep, ReadSession, RuntimeDep, needs
from api.schemas import Limit, Note, Offset, Out, Page, Strict, page_of
from kiosk.errors import AuditError, InvalidRequest
from kiosk.reports import render
from kiosk.reports import store as report_store
from kiosk.services import handovers, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import Handover, HandoverState

log = logging.getLogger(__name__)

router = APIRouter(tags=["handovers (H1)"])


class HandoverIn(Strict):
    notes: Note | None = None


class HandoverOut(Out):
    id: uuid.UUID
    cabinet_id: uuid.UUID
    state: HandoverState
    outgoing_id: uuid.UUID
    outgoing_card: str | None
    outgoing_account: str | None
    incoming_id: uuid.UUID | None
    incoming_card: str | None
    started_at: dt.datetime
    expires_at: dt.datetime | None
    accepted_at: dt.datetime | None
    closed_at: dt.datetime | None
    close_reason: str | None
    notes: str | None
    report_id: uuid.UUID | None


class HandoverDetail(HandoverOut):
    content: dict[str, Any]


def _detail(row: Handover) -> HandoverDetail:
    base = HandoverOut.model_validate(row).model_dump()
    return HandoverDetail(**base, content=handovers.content_of(row))


@router.get("/handovers", response_model=Page[HandoverOut],
            dependencies=[needs(P.HANDOVERS_READ)])
def list_handovers(
    session: ReadSession, state: HandoverState | None = None, limit: Limit = 50,
    offset: Offset = 0,
) -> Page[HandoverOut]:
    rows, total = handovers.list_handovers(session, state=state, limit=limit, offset=offset)
    return page_of(HandoverOut, rows, total, limit, offset)


@router.get("/handovers/{handover_id:uuid}", response_model=HandoverDetail,
            dependencies=[needs(P.HANDOVERS_READ)])
def get_handover(handover_id: uuid.UUID, session: ReadSession) -> HandoverDetail:
    return _detail(handovers.get_handover(session, handover_id=handover_id))


@router.get(
    "/handovers/{handover_id:uuid}/download",
    response_class=Response,
    dependencies=[needs(P.HANDOVERS_READ)],
    responses={200: {"content": {
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}},
    }}},
    summary="The handover report to print: PDF (Chinese glyphs embedded) or CSV",
)
def download(
    handover_id: uuid.UUID, session: ReadSession, runtime: RuntimeDep,
    format: Literal["pdf", "csv"] = "pdf", lang: Literal["zh", "en"] = "zh",
) -> Response:
    """An accepted handover is a stored report: its file is served as issued, checked
    against the register. One still waiting is printed as what it is, not yet a record."""
    row = handovers.get_handover(session, handover_id=handover_id)
    name = f"handover-{row.started_at.date().isoformat()}-{row.id.hex[:8]}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if row.report_id is not None:
        stored = report_store.download(
            session, report_store.get_report(session, report_id=row.report_id),
            cabinet_id=runtime.settings.cabinet_id, lang=lang, fmt=format,
            site=runtime.settings.site)
        return Response(stored.content, media_type=stored.media_type,
                        headers={**headers, "X-Report-SHA256": stored.sha256})
    data = handovers.content_of(row)
    head = report_store.letterhead_for(data, report_id=None, digest=None,
                                       site=runtime.settings.site)
    if format == "csv":
        return Response(render.render_csv(data, lang, letterhead=head),
                        media_type="text/csv; charset=utf-8", headers=headers)
    return Response(render.render_pdf(data, lang, letterhead=head,
                                      footer=f"handover {row.id} · {row.state.value}"),
                    media_type="application/pdf", headers=headers)


@router.post(
    "/handovers", response_model=HandoverDetail, status_code=201,
    dependencies=[needs(P.HANDOVERS_START)],
    summary="H1: the caller (their account linked to a keeper) starts a handover",
)
def start_handover(
    body: HandoverIn, by: PrincipalDep, audit: AuditDep, runtime: RuntimeDep, request: Request
) -> HandoverDetail:
    if by.person_id is None:
        raise InvalidRequest(
            "H1: a handover is signed by a person; this account is not linked to one "
            "(link it with PATCH /accounts/{id} person_id)"
        )
    cabinet = getattr(request.app.state, "cabinet", None)
    sensed = cabinet.last_scan() or None if cabinet is not None else None
    fobs = cabinet.last_fobs() if cabinet is not None else None
    try:
        with tx.write(audit) as session:
            row = handovers.start(
                session, audit, cabinet=runtime.ensure_cabinet(), outgoing_id=by.person_id,
                account=by.username, actors=by.actors(), zone=runtime.settings.zone,
                sensed=sensed, fobs=fobs, notes=body.notes,
                valid_for=dt.timedelta(minutes=runtime.settings.cabinet.handover_valid_min),
            )
            return _detail(row)
    except handovers.HandoverRefused as refused:
        try:
            with tx.write(audit) as session:
                handovers.log_refusal(session, audit, refused, actors=by.actors(),
                                      action="handover.start")
        except (AuditError, SQLAlchemyError):  # the refusal stands even if storage fails
            log.exception("could not log a refused handover signer")
        raise


@router.post(
    "/handovers/{handover_id:uuid}/cancel", response_model=HandoverOut,
    dependencies=[needs(P.HANDOVERS_CANCEL)],
    summary="Withdraw a waiting handover (supervisors and admins; logged)",
)
def cancel_handover(handover_id: uuid.UUID, by: PrincipalDep, audit: AuditDep) -> HandoverOut:
    with tx.write(audit) as session:
        row = handovers.cancel(session, audit, handover_id=handover_id, actors=by.actors(),
                               reason="cancelled_by_account")
        return HandoverOut.model_validate(row)
