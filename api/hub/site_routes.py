"""``/hub/v1`` lists a supervisor uses day to day, by site (issue 12): keys out (loans),
the alarms the cabinets raised, the reports they issued, the keys they received (intake)
and the shift handovers, and the merged log of a site's cabinets. Thin routes over
``kiosk.fleet.site_lists``, ``site_records`` and ``site_log``: every one takes ``site`` and
``cabinet_id`` filters, and an account scoped to a site gets its site's rows only (another
site's filter: an empty list; another site's id: 404, as if it did not exist). Each starts
from :data:`SiteReadDep`, the read session with the caller's scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from api.deps import PrincipalDep, ReadSession, needs
from api.schemas import Limit, Offset
from kiosk.fleet import report_files, site_lists, site_log, site_records
from kiosk.fleet import scope as scopes
from kiosk.services.authz import Permission as P
from kiosk.store.models import HandoverState
from kiosk.store.types import utcnow

router = APIRouter(tags=["hub"])
Name = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[\w.-]+$")]
Word = Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]
LogPosition = Annotated[str | None, Query(min_length=1, max_length=120,
                                          pattern=r"^[\w:+.-]+~[\w.-]+~\d+$")]


@dataclass(frozen=True)
class SiteRead:
    """What every list by site starts from: a read session and the caller's site scope
    (read in that session), so no route can forget the scope or read without it."""

    session: Session
    scope: scopes.Scope


def site_read(session: ReadSession, principal: PrincipalDep) -> SiteRead:
    return SiteRead(session, scopes.scope_of(session, principal.account_id))


SiteReadDep = Annotated[SiteRead, Depends(site_read)]


def _page(page: site_lists.Page, limit: int, offset: int) -> dict[str, Any]:
    return {"items": page.items, "total": page.total, "limit": limit, "offset": offset}


@router.get("/loans", dependencies=[needs(P.LOANS_READ)],
            summary="The fleet's loans by site and cabinet: the keys out now by default "
                    "(state=out|overdue|returned|all), newest draw first; the overdue "
                    "ones most overdue first")
def list_site_loans(read: SiteReadDep, principal: PrincipalDep, site: Name = None,
                    cabinet_id: Name = None,
                    state: site_lists.LoanState = site_lists.LoanState.OUT,
                    limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    return _page(site_lists.loans(
        read.session, read.scope, now=utcnow(), site=site, cabinet_id=cabinet_id, state=state,
        department_id=principal.department_id, limit=limit, offset=offset), limit, offset)


@router.get("/loans/{loan_id:uuid}", dependencies=[needs(P.LOANS_READ)],
            summary="One loan of the fleet (404 outside the caller's site)")
def get_site_loan(loan_id: uuid.UUID, read: SiteReadDep,
                  principal: PrincipalDep) -> dict[str, Any]:
    return site_lists.loan(read.session, read.scope, loan_id, now=utcnow(),
                           department_id=principal.department_id)


@router.get("/cabinet-alarms", dependencies=[needs(P.ALARMS_READ)],
            summary="The alarms the cabinets raised (F1), by site and cabinet, newest first "
                    "(/alarms are the hub's own)")
def list_cabinet_alarms(read: SiteReadDep, site: Name = None, cabinet_id: Name = None,
                        state: Word = None, limit: Limit = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    return _page(site_lists.alarms(read.session, read.scope, site=site, cabinet_id=cabinet_id,
                                   state=state, limit=limit, offset=offset), limit, offset)


@router.get("/cabinet-alarms/{alarm_id:uuid}", dependencies=[needs(P.ALARMS_READ)],
            summary="One alarm a cabinet raised, with its notes (404 outside the caller's site)")
def get_cabinet_alarm(alarm_id: uuid.UUID, read: SiteReadDep) -> dict[str, Any]:
    return site_lists.alarm(read.session, read.scope, alarm_id)


@router.get("/reports", dependencies=[needs(P.REPORTS_READ)],
            summary="The reports the cabinets issued (K9), by site and cabinet, newest first")
def list_site_reports(read: SiteReadDep, site: Name = None, cabinet_id: Name = None,
                      kind: Word = None, limit: Limit = 50,
                      offset: Offset = 0) -> dict[str, Any]:
    return _page(site_lists.reports(read.session, read.scope, site=site, cabinet_id=cabinet_id,
                                    kind=kind, limit=limit, offset=offset), limit, offset)


@router.get("/reports/{report_id:uuid}", dependencies=[needs(P.REPORTS_READ)],
            summary="One issued report's frozen data and SHA-256 (404 outside the caller's "
                    "site)")
def get_site_report(report_id: uuid.UUID, read: SiteReadDep) -> dict[str, Any]:
    return site_lists.report(read.session, read.scope, report_id)


@router.get("/reports/{report_id:uuid}/file", dependencies=[needs(P.REPORTS_READ)],
            summary="The exact bytes of an issued report's rendering, as the cabinet issued "
                    "them (X-Report-SHA256 is the hash in its report.generated event; 404 "
                    "outside the caller's site)")
def get_site_report_file(report_id: uuid.UUID, read: SiteReadDep,
                         format: Literal["pdf", "csv"] = "pdf",
                         lang: Literal["zh", "en"] | None = None) -> Response:
    file = report_files.download(read.session, read.scope, report_id, fmt=format, lang=lang)
    return Response(file.content, media_type=file.media_type, headers={
        "Content-Disposition": f'attachment; filename="report-{report_id}-{file.name}"',
        "X-Report-SHA256": file.sha256, "Cache-Control": "no-store"})


@router.get("/intake-records", dependencies=[needs(P.KEYS_READ)],
            summary="The keys the cabinets received (K1), by site and cabinet, newest first")
def list_site_intakes(read: SiteReadDep, site: Name = None, cabinet_id: Name = None,
                      limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    return _page(site_records.intakes(read.session, read.scope, site=site,
                                      cabinet_id=cabinet_id, limit=limit, offset=offset),
                 limit, offset)


@router.get("/intake-records/{intake_id:uuid}", dependencies=[needs(P.KEYS_READ)],
            summary="One intake record of the fleet (404 outside the caller's site)")
def get_site_intake(intake_id: uuid.UUID, read: SiteReadDep) -> dict[str, Any]:
    return site_records.intake(read.session, read.scope, intake_id)


@router.get("/handovers", dependencies=[needs(P.HANDOVERS_READ)],
            summary="The shift handovers at the cabinets (H1), by site and cabinet, newest "
                    "first (state=started|accepted|cancelled)")
def list_site_handovers(read: SiteReadDep, site: Name = None, cabinet_id: Name = None,
                        state: HandoverState | None = None, limit: Limit = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    return _page(site_records.handovers(read.session, read.scope, site=site,
                                        cabinet_id=cabinet_id, state=state, limit=limit,
                                        offset=offset), limit, offset)


@router.get("/handovers/{handover_id:uuid}", dependencies=[needs(P.HANDOVERS_READ)],
            summary="One handover with the report both signed (404 outside the caller's "
                    "site)")
def get_site_handover(handover_id: uuid.UUID, read: SiteReadDep) -> dict[str, Any]:
    return site_records.handover(read.session, read.scope, handover_id)


@router.get("/site-events", dependencies=[needs(P.EVENTS_READ)],
            summary="The merged log: the events of every cabinet of a site (or the fleet) "
                    "newest first by their time, then cabinet and seq; each cabinet's log "
                    "stays its own chain; type= narrows to one event type. Page on with "
                    "before=<next>")
def list_site_events(read: SiteReadDep, site: Name = None, cabinet_id: Name = None,
                     type: Annotated[str | None, Query(
                         description="one event type, e.g. key.drawn or alarm.door_forced"
                     )] = None, before: LogPosition = None,
                     limit: Limit = 50) -> dict[str, Any]:
    page = site_log.merged_log(
        read.session, read.scope, site=site, cabinet_id=cabinet_id, event_type=type,
        limit=limit, before=site_log.Position.parse(before) if before is not None else None)
    return {"items": page.items, "next": page.next, "limit": limit}
