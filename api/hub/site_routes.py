"""``/hub/v1`` lists a supervisor uses day to day, by site (issue 12): keys out (loans),
the alarms the cabinets raised, the reports they issued. Thin routes over
``kiosk.fleet.site_lists``: every one takes ``site`` and ``cabinet_id`` filters, and an
account scoped to a site gets its site's rows only (another site's filter: an empty list;
another site's id: 404, as if it did not exist)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from api.deps import AuditDep, PrincipalDep, needs
from api.schemas import Limit, Offset
from kiosk.fleet import report_files, site_lists
from kiosk.fleet import scope as scopes
from kiosk.services.authz import Permission as P
from kiosk.store.types import utcnow

router = APIRouter(tags=["hub"])
Name = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[\w.-]+$")]
Word = Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]


def _page(page: site_lists.Page, limit: int, offset: int) -> dict[str, Any]:
    return {"items": page.items, "total": page.total, "limit": limit, "offset": offset}


@router.get("/loans", dependencies=[needs(P.LOANS_READ)],
            summary="The fleet's loans by site and cabinet: the keys out now by default "
                    "(state=out|overdue|returned|all), newest draw first")
def list_site_loans(audit: AuditDep, principal: PrincipalDep, site: Name = None,
                    cabinet_id: Name = None,
                    state: site_lists.LoanState = site_lists.LoanState.OUT,
                    limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    with Session(audit.engine) as session:
        scope = scopes.scope_of(session, principal.account_id)
        return _page(site_lists.loans(
            session, scope, now=utcnow(), site=site, cabinet_id=cabinet_id, state=state,
            department_id=principal.department_id, limit=limit, offset=offset), limit, offset)


@router.get("/loans/{loan_id:uuid}", dependencies=[needs(P.LOANS_READ)],
            summary="One loan of the fleet (404 outside the caller's site)")
def get_site_loan(loan_id: uuid.UUID, audit: AuditDep,
                  principal: PrincipalDep) -> dict[str, Any]:
    with Session(audit.engine) as session:
        return site_lists.loan(session, scopes.scope_of(session, principal.account_id),
                               loan_id, now=utcnow(), department_id=principal.department_id)


@router.get("/cabinet-alarms", dependencies=[needs(P.ALARMS_READ)],
            summary="The alarms the cabinets raised (F1), by site and cabinet, newest first "
                    "(/alarms are the hub's own)")
def list_cabinet_alarms(audit: AuditDep, principal: PrincipalDep, site: Name = None,
                        cabinet_id: Name = None, state: Word = None, limit: Limit = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    with Session(audit.engine) as session:
        scope = scopes.scope_of(session, principal.account_id)
        return _page(site_lists.alarms(session, scope, site=site, cabinet_id=cabinet_id,
                                       state=state, limit=limit, offset=offset), limit, offset)


@router.get("/cabinet-alarms/{alarm_id:uuid}", dependencies=[needs(P.ALARMS_READ)],
            summary="One alarm a cabinet raised, with its notes (404 outside the caller's site)")
def get_cabinet_alarm(alarm_id: uuid.UUID, audit: AuditDep,
                      principal: PrincipalDep) -> dict[str, Any]:
    with Session(audit.engine) as session:
        return site_lists.alarm(session, scopes.scope_of(session, principal.account_id),
                                alarm_id)


@router.get("/reports", dependencies=[needs(P.REPORTS_READ)],
            summary="The reports the cabinets issued (K9), by site and cabinet, newest first")
def list_site_reports(audit: AuditDep, principal: PrincipalDep, site: Name = None,
                      cabinet_id: Name = None, kind: Word = None, limit: Limit = 50,
                      offset: Offset = 0) -> dict[str, Any]:
    with Session(audit.engine) as session:
        scope = scopes.scope_of(session, principal.account_id)
        return _page(site_lists.reports(session, scope, site=site, cabinet_id=cabinet_id,
                                        kind=kind, limit=limit, offset=offset), limit, offset)


@router.get("/reports/{report_id:uuid}", dependencies=[needs(P.REPORTS_READ)],
            summary="One issued report's frozen data and SHA-256 (404 outside the caller's "
                    "site)")
def get_site_report(report_id: uuid.UUID, audit: AuditDep,
                    principal: PrincipalDep) -> dict[str, Any]:
    with Session(audit.engine) as session:
        return site_lists.report(session, scopes.scope_of(session, principal.account_id),
                                 report_id)


@router.get("/reports/{report_id:uuid}/file", dependencies=[needs(P.REPORTS_READ)],
            summary="The exact bytes of an issued report's rendering, as the cabinet issued "
                    "them (X-Report-SHA256 is the hash in its report.generated event; 404 "
                    "outside the caller's site)")
def get_site_report_file(report_id: uuid.UUID, audit: AuditDep, principal: PrincipalDep,
                         format: Literal["pdf", "csv"] = "pdf",
                         lang: Literal["zh", "en"] | None = None) -> Response:
    with Session(audit.engine) as session:
        file = report_files.download(session, scopes.scope_of(session, principal.account_id),
                                     report_id, fmt=format, lang=lang)
    return Response(file.content, media_type=file.media_type, headers={
        "Content-Disposition": f'attachment; filename="report-{report_id}-{file.name}"',
        "X-Report-SHA256": file.sha256, "Cache-Control": "no-store"})
